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
	vpnOff   []uint32 // SetVPNFastPath(id, false) calls
	last     []datapath.ServiceEndpoint
	written  int
}

func (f *fakeEndpointDatapath) SetServiceEndpoints(_ context.Context, eps []datapath.ServiceEndpoint) error {
	if f.full {
		return datapath.ErrTooManyServiceEndpoints
	}
	f.written++
	f.last = append([]datapath.ServiceEndpoint(nil), eps...)
	return nil
}

func (f *fakeEndpointDatapath) SetVPNFastPath(_ context.Context, id uint32, on bool) error {
	if !on {
		f.vpnOff = append(f.vpnOff, id)
	}
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

// TestServiceEndpointsNodeLocalAndBounded: with Node set, only endpoints inside this
// node's blocks reach the datapath; a VPN over MaxPerVPN has its endpoints left out and
// its fast path held off (switched off before the write, in Overrides), the other VPN
// is untouched; back under the bound, its endpoints return and the hold is released.
// Fakes for cache and datapath; TestServiceClusterIP (test/e2e) runs the node-local
// filter for real, and FastPathReconciler's use of Overrides is below.
func TestServiceEndpointsNodeLocalAndBounded(t *testing.T) {
	scheme := testScheme(t)
	vpn := func(name, cidr string, id uint32, ns string) *v1alpha1.VirtualPrivateNetwork {
		return &v1alpha1.VirtualPrivateNetwork{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:   v1alpha1.VirtualPrivateNetworkSpec{CIDR: cidr, Namespaces: []string{ns}},
			Status: v1alpha1.VirtualPrivateNetworkStatus{VPNID: id}}
	}
	block := func(vpn, cidr, node string) *v1alpha1.VPNBlock {
		return &v1alpha1.VPNBlock{ObjectMeta: metav1.ObjectMeta{Name: vpn + "-" + node + "-" + cidr[len(cidr)-2:],
			Labels: map[string]string{v1alpha1.LabelVPN: vpn, v1alpha1.LabelNode: node}},
			Spec: v1alpha1.VPNBlockSpec{VPN: vpn, Node: node, CIDR: cidr}}
	}
	tcp := corev1.ProtocolTCP
	slice := func(ns string, ports int, addrs ...string) *discoveryv1.EndpointSlice {
		s := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web-1",
			Labels: map[string]string{discoveryv1.LabelServiceName: "web"}}, AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints: []discoveryv1.Endpoint{{Addresses: addrs}}}
		for i := range ports {
			p := int32(8000 + i)
			s.Ports = append(s.Ports, discoveryv1.EndpointPort{Port: &p, Protocol: &tcp})
		}
		return s
	}
	svc := func(ns string) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}, Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.9"}}
	}
	redSlice := slice("a", 6, "10.1.0.5", "10.1.0.70") // .70: a block of another node
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "a"}}, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "b"}},
		vpn("red", "10.1.0.0/24", 2, "a"), vpn("blue", "10.2.0.0/24", 3, "b"),
		block("red", "10.1.0.0/26", "n1"), block("red", "10.1.0.64/26", "n2"), block("blue", "10.2.0.0/26", "n1"),
		svc("a"), svc("b"), redSlice, slice("b", 2, "10.2.0.5")).Build()
	ctx := context.Background()
	dp := &fakeEndpointDatapath{}
	ov := NewFastPathOverrides()
	r := &ServiceEndpointReconciler{Cache: c, Datapath: dp, FastPath: true, Node: "n1", MaxPerVPN: 4,
		Overrides: ov, Log: logr.Discard()}

	_, err := r.Reconcile(ctx, reconcile.Request{})
	require.NoError(t, err)
	for _, e := range dp.last {
		require.Equal(t, uint32(3), e.VPN, "only blue's endpoints are written: %v", dp.last)
	}
	require.Len(t, dp.last, 2, "blue: one local address × 2 ports")
	require.Equal(t, []uint32{2}, dp.vpnOff, "red's fast path is switched off")
	why, held := ov.Off(2)
	require.True(t, held)
	require.Contains(t, why, "6 Service endpoints on this node, bound 4", "only red's local address counts")
	_, held = ov.Off(3)
	require.False(t, held)

	redSlice.Ports = redSlice.Ports[:3]
	require.NoError(t, c.Update(ctx, redSlice))
	_, err = r.Reconcile(ctx, reconcile.Request{})
	require.NoError(t, err)
	require.Len(t, dp.last, 5, "red's three endpoints of 10.1.0.5 are back, blue's two stay: %v", dp.last)
	for _, e := range dp.last {
		require.NotEqual(t, "10.1.0.70", e.IP.String(), "an address of another node's block")
	}
	_, held = ov.Off(2)
	require.False(t, held, "back under the bound, the hold is released")
}

// TestFastPathReconcilerHonoursOverrides: a VPN whose spec wants the fast path gets it
// off while Overrides hold it, and on again once released.
func TestFastPathReconcilerHonoursOverrides(t *testing.T) {
	scheme := testScheme(t)
	v := &v1alpha1.VirtualPrivateNetwork{ObjectMeta: metav1.ObjectMeta{Name: "red"},
		Spec: v1alpha1.VirtualPrivateNetworkSpec{CIDR: "10.1.0.0/24"}, Status: v1alpha1.VirtualPrivateNetworkStatus{VPNID: 2}}
	claim := &v1alpha1.VPNID{ObjectMeta: metav1.ObjectMeta{Name: "2"}, Spec: v1alpha1.VPNIDSpec{ID: 2, VPN: "red"}}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(v, claim).Build()
	sw := &recordingSwitch{}
	ov := NewFastPathOverrides()
	r := &FastPathReconciler{Client: c, Datapath: sw, Overrides: ov, Log: logr.Discard()}
	ctx := context.Background()
	req := reconcile.Request{NamespacedName: client.ObjectKey{Name: "red"}}
	ov.Set(2, "red", "test hold")
	_, err := r.Reconcile(ctx, req)
	require.NoError(t, err)
	ov.Set(2, "red", "")
	_, err = r.Reconcile(ctx, req)
	require.NoError(t, err)
	require.Equal(t, []bool{false, true}, sw.calls)
	require.Len(t, ov.Events(), 2, "each change enqueues the VPN")
}

type recordingSwitch struct{ calls []bool }

func (s *recordingSwitch) SetVPNFastPath(_ context.Context, _ uint32, on bool) error {
	s.calls = append(s.calls, on)
	return nil
}
