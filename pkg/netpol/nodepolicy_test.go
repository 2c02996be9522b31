package netpol

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/go-logr/logr"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	cnpv1 "sigs.k8s.io/network-policy-api/apis/v1beta1"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
	"github.com/sdncni/sdncni/pkg/attach"
	"github.com/sdncni/sdncni/pkg/datapath"
	"github.com/sdncni/sdncni/pkg/ipam"
)

type fakePolicyDatapath struct {
	set []datapath.VPNPolicy
	off []netip.Addr
}

func (f *fakePolicyDatapath) SetEndpointFastPath(_ context.Context, _ uint32, ip netip.Addr, on bool) error {
	if !on {
		f.off = append(f.off, ip)
	}
	return nil
}

func (f *fakePolicyDatapath) SetPolicy(_ context.Context, p datapath.VPNPolicy) (datapath.PolicyReport, error) {
	f.set = append(f.set, p)
	return datapath.PolicyReport{}, nil
}

type fakeAllocs []ipam.Allocation

func (f fakeAllocs) List(context.Context) ([]ipam.Allocation, error) { return f, nil }

type fakeNets map[string]attach.Network

func (f fakeNets) ByName(n string) (attach.Network, bool) { v, ok := f[n]; return v, ok }

// TestFastPathReconcilerComputes: with a fake cache, the VPN's pods on this node get
// their isolation and the pair entries policy.PairPorts gives (only pairs a policy
// governs, none for what nothing allows); a pod the cache does not know stays off; a
// policy of a namespace another VPN owns does not count; a cache that cannot answer
// switches the VPN's pods off.
func TestFastPathReconcilerComputes(t *testing.T) {
	scheme, objs, allocs, nets := nodeFixture(t)
	addr := netip.MustParseAddr
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).Build()
	dp := &fakePolicyDatapath{}
	r := &FastPathReconciler{Isolation: &Isolation{Cache: c}, Datapath: dp, Store: allocs, Networks: nets, Log: logr.Discard()}
	_, err := r.Reconcile(context.Background(), nodeRequest)
	require.NoError(t, err)
	require.Len(t, dp.set, 2)
	got := map[uint32]datapath.VPNPolicy{}
	for _, p := range dp.set {
		got[p.VPN] = p
	}
	p := got[5]
	require.ElementsMatch(t, []datapath.PolicyEndpoint{{IP: addr("10.1.0.1"), Ingress: true}, {IP: addr("10.1.0.2")}, {IP: addr("10.1.0.3")},
		{IP: addr("10.1.0.4")}}, p.Endpoints, "a pod the cache does not know, in a namespace without policies (y), is on and not isolated")
	require.Equal(t, []netip.Addr{addr("10.1.0.5")}, p.Off, "one the cache does not know in a namespace with a policy (x) stays off")
	require.Equal(t, []datapath.PolicyPair{{Src: addr("10.1.0.3"), Dst: addr("10.1.0.1"),
		Ranges: []datapath.PortRange{{Protocol: "tcp", Lo: 8080, Hi: 8080}}}}, p.Pairs,
		"y/a → x/a on the named port; x/b → x/a allows nothing; ungoverned pairs need no entry")
	q := got[6]
	require.Equal(t, []datapath.PolicyEndpoint{{IP: addr("10.2.0.1"), Ingress: true}}, q.Endpoints)
	require.Empty(t, q.Pairs)

	// The cache fails: off.
	broken := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).WithInterceptorFuncs(interceptor.Funcs{
		List: func(ctx context.Context, c client.WithWatch, l client.ObjectList, o ...client.ListOption) error {
			if _, ok := l.(*networkingv1.NetworkPolicyList); ok {
				return errors.New("cache gone")
			}
			return c.List(ctx, l, o...)
		}}).Build()
	dp = &fakePolicyDatapath{}
	r = &FastPathReconciler{Isolation: &Isolation{Cache: broken}, Datapath: dp, Store: allocs, Networks: nets, Log: logr.Discard()}
	_, err = r.Reconcile(context.Background(), nodeRequest)
	require.Error(t, err)
	for _, p := range dp.set {
		require.Empty(t, p.Endpoints)
		require.NotEmpty(t, p.Off)
	}
}

// TestFastPathReconcilerClusterPolicies: a ClusterNetworkPolicy (Admin: deny y → x on
// TCP 9000; Baseline: deny w's ingress from everywhere) governs its subjects on the fast
// path: x/b, which no NetworkPolicy selects, gets the ingress flag and pair entries that
// allow all but the denied port; x/a keeps its NetworkPolicy's verdict below the admin
// deny; the baseline policy governs w/a in VPN q, and pods it selects start off the fast
// path at ADD.
func TestFastPathReconcilerClusterPolicies(t *testing.T) {
	scheme, objs, allocs, nets := nodeFixture(t)
	require.NoError(t, cnpv1.Install(scheme))
	nsSel := func(n string) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchLabels: map[string]string{"ns": n}}
	}
	objs = append(objs,
		&cnpv1.ClusterNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "admin"}, Spec: cnpv1.ClusterNetworkPolicySpec{
			Tier: cnpv1.AdminTier, Priority: 1, Subject: cnpv1.ClusterNetworkPolicySubject{Namespaces: nsSel("x")},
			Ingress: []cnpv1.ClusterNetworkPolicyIngressRule{{Action: cnpv1.ClusterNetworkPolicyRuleActionDeny,
				From:      []cnpv1.ClusterNetworkPolicyIngressPeer{{Namespaces: nsSel("y")}},
				Protocols: []cnpv1.ClusterNetworkPolicyProtocol{{TCP: &cnpv1.ClusterNetworkPolicyProtocolTCP{DestinationPort: &cnpv1.Port{Number: 9000}}}}}}}},
		&cnpv1.ClusterNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "base"}, Spec: cnpv1.ClusterNetworkPolicySpec{
			Tier: cnpv1.BaselineTier, Priority: 1, Subject: cnpv1.ClusterNetworkPolicySubject{Namespaces: nsSel("w")},
			Ingress: []cnpv1.ClusterNetworkPolicyIngressRule{{Action: cnpv1.ClusterNetworkPolicyRuleActionDeny,
				From: []cnpv1.ClusterNetworkPolicyIngressPeer{{Namespaces: &metav1.LabelSelector{}}}}}}})
	addr := netip.MustParseAddr
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).Build()
	dp := &fakePolicyDatapath{}
	iso := &Isolation{Cache: c, ClusterPolicies: true}
	r := &FastPathReconciler{Isolation: iso, Datapath: dp, Store: allocs, Networks: nets, Log: logr.Discard()}
	_, err := r.Reconcile(context.Background(), nodeRequest)
	require.NoError(t, err)
	got := map[uint32]datapath.VPNPolicy{}
	for _, p := range dp.set {
		got[p.VPN] = p
	}
	p := got[5]
	require.ElementsMatch(t, []datapath.PolicyEndpoint{{IP: addr("10.1.0.1"), Ingress: true}, {IP: addr("10.1.0.2"), Ingress: true}, {IP: addr("10.1.0.3")}}, p.Endpoints)
	xa, xb, ya := addr("10.1.0.1"), addr("10.1.0.2"), addr("10.1.0.3")
	require.ElementsMatch(t, []datapath.PolicyPair{
		{Src: ya, Dst: xa, Ranges: []datapath.PortRange{{Protocol: "tcp", Lo: 8080, Hi: 8080}}},
		{Src: ya, Dst: xb, Ranges: []datapath.PortRange{{Protocol: "tcp", Lo: 0, Hi: 8999}, {Protocol: "tcp", Lo: 9001, Hi: 65535}, {Protocol: "udp", Lo: 0, Hi: 65535}}},
		{Src: xa, Dst: xb, All: true},
	}, p.Pairs, "x/b → x/a: the NetworkPolicy allows nothing, so no entry")
	require.Equal(t, []datapath.PolicyEndpoint{{IP: addr("10.2.0.1"), Ingress: true}}, got[6].Endpoints)

	ctx := context.Background()
	require.False(t, iso.FastPathAllowed(ctx, "x", "b"), "a pod an admin policy selects starts off the fast path")
	require.False(t, iso.FastPathAllowed(ctx, "w", "a"))
	require.True(t, iso.FastPathAllowed(ctx, "y", "a"), "a pod no policy selects starts on it")
	iso.ClusterPolicies = false
	require.True(t, iso.FastPathAllowed(ctx, "x", "b"), "without the CRD there are no cluster policies")
}

// nodeFixture: namespaces x, y (VPN p, id 5) and w (VPN q, id 6), pods x/a, x/b, y/a,
// w/a (each naming port "web" 8080) and their allocations on this node (and a ghost pod
// y/ghost and x/ghost the cache does not know); a NetworkPolicy lets y into x/a on "web", another
// isolates w.
func nodeFixture(t *testing.T) (*runtime.Scheme, []client.Object, fakeAllocs, fakeNets) {
	t.Helper()
	scheme := runtime.NewScheme()
	require.NoError(t, clientgoscheme.AddToScheme(scheme))
	require.NoError(t, v1alpha1.AddToScheme(scheme))
	ns := func(n string) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n, Labels: map[string]string{"ns": n}}}
	}
	pod := func(ns, name string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"pod": name}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Ports: []corev1.ContainerPort{{Name: "web", ContainerPort: 8080}}}}}}
	}
	tcp := corev1.ProtocolTCP
	web := intstr.FromString("web")
	objs := []client.Object{ns("x"), ns("y"), ns("w"),
		&v1alpha1.VirtualPrivateNetwork{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: v1alpha1.VirtualPrivateNetworkSpec{Namespaces: []string{"x", "y"}}},
		&v1alpha1.VirtualPrivateNetwork{ObjectMeta: metav1.ObjectMeta{Name: "q"}, Spec: v1alpha1.VirtualPrivateNetworkSpec{Namespaces: []string{"w"}}},
		pod("x", "a"), pod("x", "b"), pod("y", "a"), pod("w", "a"),
		&networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: "from-y"}, Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"pod": "a"}},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"ns": "y"}}}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &web}}}}}},
		// In w (VPN q): isolates w/a, nothing of p.
		&networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "w", Name: "deny"}},
	}
	addr := netip.MustParseAddr
	alloc := func(pool, ns, name, ip string) ipam.Allocation {
		return ipam.Allocation{Pool: pool, Addr: netip.PrefixFrom(addr(ip), 24), Owner: ipam.Owner{ContainerID: "c-" + name, PodNamespace: ns, PodName: name}}
	}
	allocs := fakeAllocs{alloc("p", "x", "a", "10.1.0.1"), alloc("p", "x", "b", "10.1.0.2"), alloc("p", "y", "a", "10.1.0.3"),
		alloc("p", "y", "ghost", "10.1.0.4"), alloc("p", "x", "ghost", "10.1.0.5"), alloc("q", "w", "a", "10.2.0.1"),
		{Pool: "p", Addr: netip.MustParsePrefix("10.1.0.254/24"), Owner: ipam.Owner{ContainerID: attach.NodeOwnerPrefix + "gw"}}}
	nets := fakeNets{"p": {Name: "p", ID: 5}, "q": {Name: "q", ID: 6}}

	return scheme, objs, allocs, nets
}
