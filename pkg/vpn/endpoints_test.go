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
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
	"github.com/sdncni/sdncni/pkg/datapath"
)

// TestServiceEndpointSelection covers which endpoints ServiceEndpointReconciler hands
// the datapath, with a fake client standing in for the informer cache;
// test/e2e/service_test.go runs the same path with a real API server, OVN and kernel.
func TestServiceEndpointSelection(t *testing.T) {
	scheme := testScheme(t)
	vpn := func(name, cidr string, id uint32, namespaces ...string) *v1alpha1.VirtualPrivateNetwork {
		return &v1alpha1.VirtualPrivateNetwork{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:   v1alpha1.VirtualPrivateNetworkSpec{CIDR: cidr, Namespaces: namespaces},
			Status: v1alpha1.VirtualPrivateNetworkStatus{VPNID: id}}
	}
	svc := func(ns, name, ip string) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.ServiceSpec{ClusterIP: ip}}
	}
	tcp, udp, sctp := corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP
	slice := func(ns, svc, name string, af discoveryv1.AddressType, ports []discoveryv1.EndpointPort, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
			Labels: map[string]string{discoveryv1.LabelServiceName: svc}}, AddressType: af, Ports: ports, Endpoints: eps}
	}
	ep := func(ready bool, addrs ...string) discoveryv1.Endpoint {
		return discoveryv1.Endpoint{Addresses: addrs, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}
	}
	port := func(p int32, proto *corev1.Protocol) discoveryv1.EndpointPort {
		return discoveryv1.EndpointPort{Port: &p, Protocol: proto}
	}
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "a"}}, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "b"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "late"}},
		vpn(v1alpha1.DefaultVPNName, "10.9.0.0/16", 1),
		vpn("red", "10.1.0.0/24", 2, "a"),
		vpn("unrealised", "10.3.0.0/24", 0, "late"),
		svc("a", "web", "10.96.0.1"), svc("a", "headless", corev1.ClusterIPNone), svc("b", "dns", "10.96.0.2"),
		svc("late", "x", "10.96.0.3"),
		// web: two ports, a ready and a not-ready endpoint, a host-network endpoint, an SCTP port.
		slice("a", "web", "web-1", discoveryv1.AddressTypeIPv4,
			[]discoveryv1.EndpointPort{port(8080, nil), port(9000, &udp), port(7, &sctp)},
			ep(true, "10.1.0.5"), ep(false, "10.1.0.6"), ep(true, "192.168.1.10")),
		slice("a", "web", "web-6", discoveryv1.AddressTypeIPv6, []discoveryv1.EndpointPort{port(8080, &tcp)}, ep(true, "fd00::5")),
		slice("a", "headless", "headless-1", discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{port(80, &tcp)}, ep(true, "10.1.0.7")),
		slice("b", "dns", "dns-1", discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{port(53, &udp)}, ep(true, "10.9.0.5")),
		slice("a", "gone", "gone-1", discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{port(80, &tcp)}, ep(true, "10.1.0.8")),
		slice("late", "x", "x-1", discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{port(80, &tcp)}, ep(true, "10.3.0.5")),
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).Build()
	r := &ServiceEndpointReconciler{Cache: c, Log: logr.Discard()}
	got, err := r.Endpoints(context.Background())
	require.NoError(t, err)
	se := func(vpn uint32, ip string, port uint16, proto string) datapath.ServiceEndpoint {
		return datapath.ServiceEndpoint{VPN: vpn, IP: netip.MustParseAddr(ip), Port: port, Protocol: proto}
	}
	require.ElementsMatch(t, []datapath.ServiceEndpoint{
		se(2, "10.1.0.5", 8080, "tcp"), se(2, "10.1.0.5", 9000, "udp"),
		se(2, "10.1.0.6", 8080, "tcp"), se(2, "10.1.0.6", 9000, "udp"), // not ready: may still drain connections
		se(1, "10.9.0.5", 53, "udp"),
	}, got, "no host-network, IPv6, SCTP, headless, Service-less or unrealised-VPN endpoints")
}

// fakeEndpointDatapath records what ServiceEndpointReconciler asks of the datapath.
type fakeEndpointDatapath struct {
	full     bool // SetServiceEndpoints refuses: too many
	fastPath []bool
	written  int
}

func (f *fakeEndpointDatapath) SetServiceEndpoints(context.Context, []datapath.ServiceEndpoint) error {
	if f.full {
		return datapath.ErrTooManyServiceEndpoints
	}
	f.written++
	return nil
}

func (f *fakeEndpointDatapath) SetFastPath(_ context.Context, on bool) error {
	f.fastPath = append(f.fastPath, on)
	return nil
}

// TestServiceEndpointFastPathSwitch: the node's fast path is held off until the first
// write when asked to, goes off while the endpoints do not fit, and returns to the
// configured setting (never on when configured off). The datapath side is
// TestFromPodServiceEndpoints in pkg/datapath (real programs and maps).
func TestServiceEndpointFastPathSwitch(t *testing.T) {
	scheme := testScheme(t)
	c := fake.NewClientBuilder().WithScheme(scheme).Build()
	ctx := context.Background()
	for _, configured := range []bool{true, false} {
		dp := &fakeEndpointDatapath{}
		r := &ServiceEndpointReconciler{Cache: c, Datapath: dp, FastPath: configured, WaitForSync: true, Log: logr.Discard()}
		require.NoError(t, r.Hold(ctx))
		require.Equal(t, []bool{false}, dp.fastPath, "held off before the first write")
		_, err := r.Reconcile(ctx, reconcile.Request{})
		require.NoError(t, err)
		require.Equal(t, []bool{false, configured}, dp.fastPath)
		dp.full = true
		res, err := r.Reconcile(ctx, reconcile.Request{})
		require.NoError(t, err)
		require.Positive(t, res.RequeueAfter, "retried while it does not fit")
		require.Equal(t, []bool{false, configured, false}, dp.fastPath)
		dp.full = false
		_, err = r.Reconcile(ctx, reconcile.Request{})
		require.NoError(t, err)
		require.Equal(t, []bool{false, configured, false, configured}, dp.fastPath)
		require.Equal(t, 2, dp.written)
	}
	r := &ServiceEndpointReconciler{Cache: c, Datapath: &fakeEndpointDatapath{}, FastPath: true, Log: logr.Discard()}
	require.NoError(t, r.Hold(ctx))
	require.Empty(t, r.Datapath.(*fakeEndpointDatapath).fastPath, "no hold without WaitForSync")
}
