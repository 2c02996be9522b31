package vpn

import (
	"context"
	"net/netip"
	"testing"

	"github.com/go-logr/logr"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
	"github.com/sdncni/sdncni/pkg/gateway"
)

// testScheme knows the core types and ours, for fake clients.
func testScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	scheme := runtime.NewScheme()
	require.NoError(t, clientgoscheme.AddToScheme(scheme))
	require.NoError(t, v1alpha1.AddToScheme(scheme))
	return scheme
}

// TestSharedSelection covers which Services SharedServiceReconciler.Shared picks, with
// a fake client standing in for the informer cache; test/e2e/shared_test.go runs the
// same path against a real API server, OVN and kernel.
func TestSharedSelection(t *testing.T) {
	scheme := testScheme(t)
	vpn := func(name, cidr string, id uint32, shared []string, namespaces ...string) *v1alpha1.VirtualPrivateNetwork {
		return &v1alpha1.VirtualPrivateNetwork{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:   v1alpha1.VirtualPrivateNetworkSpec{CIDR: cidr, Namespaces: namespaces, SharedServices: shared},
			Status: v1alpha1.VirtualPrivateNetworkStatus{VPNID: id, OVN: &v1alpha1.OVNStatus{}}}
	}
	svc := func(ns, name, ip string) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: corev1.ServiceSpec{ClusterIP: ip, Ports: []corev1.ServicePort{{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53}}}}
	}
	slice := func(ns, svc string, addrs ...string) *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: svc + "-x",
			Labels: map[string]string{discoveryv1.LabelServiceName: svc}}, AddressType: discoveryv1.AddressTypeIPv4,
			Ports:     []discoveryv1.EndpointPort{{Name: ptr.To("dns"), Protocol: ptr.To(corev1.ProtocolUDP), Port: ptr.To[int32](5353)}},
			Endpoints: []discoveryv1.Endpoint{{Addresses: addrs}}}
	}
	ns := func(name string) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	}
	unrealised := vpn("late", "10.3.0.0/24", 0, []string{"l/svc"}, "l")
	headless := svc("a", "headless", corev1.ClusterIPNone)
	objs := []client.Object{
		ns("kube-system"), ns("a"), ns("b"), ns("c"), ns("l"),
		vpn(v1alpha1.DefaultVPNName, "10.1.0.0/16", 1, nil),
		vpn("red", "10.1.0.0/24", 2, []string{"a/api", "b/api", "a/headless", "a/missing"}, "a"),
		vpn("blue", "10.1.0.0/24", 3, nil, "b"),
		vpn("green", "10.2.0.0/24", 4, nil, "c"),
		vpn("green2", "10.2.0.0/24", 5, []string{"c/api"}, "c"), // c claimed twice: conflict
		unrealised,
		svc("kube-system", "kube-dns", "10.96.0.10"), slice("kube-system", "kube-dns", "10.1.0.5", "10.1.0.6"),
		svc("a", "api", "10.96.0.20"), slice("a", "api", "10.1.0.7"),
		svc("b", "api", "10.96.0.30"), svc("c", "api", "10.96.0.40"), headless, svc("l", "svc", "10.96.0.50"),
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).Build()
	r := &SharedServiceReconciler{Cache: c, DNS: DefaultDNSService, Log: logr.Discard()}
	got, err := r.Shared(context.Background())
	require.NoError(t, err)
	udp := func(vip string, eps ...string) gateway.SharedPort {
		p := gateway.SharedPort{Protocol: "udp", VIP: netip.MustParseAddrPort(vip)}
		for _, e := range eps {
			p.Endpoints = append(p.Endpoints, netip.MustParseAddrPort(e))
		}
		return p
	}
	require.Equal(t, []gateway.SharedService{
		{Name: "a/api", VPN: "red", VPNID: 2, Prefix: netip.MustParsePrefix("10.1.0.0/24"),
			Ports: []gateway.SharedPort{udp("10.96.0.20:53", "10.1.0.7:5353")}},
		{Name: "kube-system/kube-dns", VPN: v1alpha1.DefaultVPNName, VPNID: 1, Prefix: netip.MustParsePrefix("10.1.0.0/16"),
			Ports: []gateway.SharedPort{udp("10.96.0.10:53", "10.1.0.5:5353", "10.1.0.6:5353")}},
	}, got, "b/api is not red's, c is in conflict, headless and missing Services and unrealised VPNs share nothing")

	// No DNS configured: only what VPNs list.
	r.DNS = ""
	got, err = r.Shared(context.Background())
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, "a/api", got[0].Name)
}
