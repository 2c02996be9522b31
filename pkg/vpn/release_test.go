package vpn_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
	"github.com/sdncni/sdncni/internal/testenv"
	"github.com/sdncni/sdncni/pkg/attach"
	"github.com/sdncni/sdncni/pkg/gateway"
	"github.com/sdncni/sdncni/pkg/ipam"
	"github.com/sdncni/sdncni/pkg/vpn"
)

// testNode is one node's block and address machinery as the controller wires it: its
// NodeNetworks (reading through an informer cache, writing to the API server), its
// address store, the gateway's management-address reservation on every claimed block,
// and a BlockReleaser.
type testNode struct {
	name    string
	nets    *vpn.NodeNetworks
	store   *ipam.Store
	rel     *vpn.BlockReleaser
	removed []string // VPNs whose management port the releaser removed
	mu      sync.Mutex
}

func startCache(ctx context.Context, t *testing.T, api *testenv.APIServer) cache.Cache {
	t.Helper()
	c, err := cache.New(api.Config, cache.Options{Scheme: api.Scheme})
	require.NoError(t, err)
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Start(cctx) }()
	t.Cleanup(func() { cancel(); <-done })
	require.True(t, c.WaitForCacheSync(ctx))
	for _, l := range []client.ObjectList{&v1alpha1.VirtualPrivateNetworkList{}, &v1alpha1.VPNBlockList{},
		&v1alpha1.VPNIDList{}, &corev1.NamespaceList{}} {
		require.NoError(t, c.List(ctx, l)) // start the informers
	}
	return c
}

func newTestNode(ctx context.Context, t *testing.T, api *testenv.APIServer, c cache.Cache, name string, after time.Duration,
	now func() time.Time) *testNode {
	t.Helper()
	store, err := ipam.Open(ctx, filepath.Join(t.TempDir(), "ipam.json"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	n := &testNode{name: name, store: store, nets: vpn.NewNodeNetworks(c, api.Client, name, 1400, logr.Discard())}
	n.nets.UseAddresses(store)
	gw := gateway.New(gateway.Config{Node: name}, nil, nil, store, logr.Discard()) // Reserve only
	n.nets.OnBlock(func(ctx context.Context, net attach.Network) {
		// As in the controller, a failure is only logged: net's lowest range may be a
		// block given back that the cache still shows (fenced); the gateway reconciler
		// reserves again with the blocks read fresh.
		if _, err := gw.Reserve(ctx, net); err != nil && !errors.Is(err, ipam.ErrExhausted) {
			t.Errorf("reserve management address: %v", err)
		}
	})
	n.rel = &vpn.BlockReleaser{Networks: n.nets, Addresses: store, Gateway: n, After: after, Now: now, Log: logr.Discard()}
	return n
}

// Remove stands in for the gateway's: the management port's address goes.
func (n *testNode) Remove(ctx context.Context, vpnName string) error {
	n.mu.Lock()
	n.removed = append(n.removed, vpnName)
	n.mu.Unlock()
	all, err := n.store.List(ctx)
	if err != nil {
		return err
	}
	for _, a := range all {
		if a.Pool == vpnName && strings.HasPrefix(a.Owner.ContainerID, attach.NodeOwnerPrefix) {
			if err := n.store.Release(ctx, a.Pool, a.Owner); err != nil {
				return err
			}
		}
	}
	return nil
}

// add does what ADD does for the addresses: the namespace's network, then an address,
// claiming blocks while the ranges are full.
func (n *testNode) add(ctx context.Context, ns, id string) (netip.Addr, error) {
	net, err := n.nets.ForNamespace(ctx, ns)
	if err != nil {
		return netip.Addr{}, err
	}
	a, _, err := attach.AllocateAddress(ctx, n.store, n.nets, net,
		ipam.Owner{ContainerID: id, IfName: "eth0", PodNamespace: ns, PodName: id})
	if err != nil {
		return netip.Addr{}, err
	}
	return a.Addr.Addr(), nil
}

func (n *testNode) del(ctx context.Context, t *testing.T, id string) {
	t.Helper()
	_, err := n.store.ReleaseOwner(ctx, ipam.Owner{ContainerID: id, IfName: "eth0"})
	require.NoError(t, err)
}

// blocks lists the node's VPNBlocks of vpnName, read from the API server.
func (n *testNode) blocks(ctx context.Context, t *testing.T, c client.Reader, vpnName string) []netip.Prefix {
	t.Helper()
	var l v1alpha1.VPNBlockList
	require.NoError(t, c.List(ctx, &l, client.MatchingLabels{v1alpha1.LabelVPN: vpnName, v1alpha1.LabelNode: n.name}))
	var out []netip.Prefix
	for _, b := range l.Items {
		out = append(out, netip.MustParsePrefix(b.Spec.CIDR))
	}
	return out
}

// requireHeldInOwnBlocks checks every address the nodes' stores hold: one holder each,
// inside a VPNBlock (in the API server) of its node.
func requireHeldInOwnBlocks(ctx context.Context, t *testing.T, c client.Reader, vpnName string, nodes ...*testNode) int {
	t.Helper()
	seen := map[netip.Addr]string{}
	for _, n := range nodes {
		blocks := n.blocks(ctx, t, c, vpnName)
		all, err := n.store.List(ctx)
		require.NoError(t, err)
		for _, a := range all {
			if a.Pool != vpnName {
				continue
			}
			ip := a.Addr.Addr()
			prev, dup := seen[ip]
			require.False(t, dup, "%s held on %s and %s", ip, prev, n.name)
			seen[ip] = n.name
			in := false
			for _, b := range blocks {
				in = in || b.Contains(ip)
			}
			require.True(t, in, "%s (%s on %s) is in none of its node's blocks %v", ip, a.Owner.ContainerID, n.name, blocks)
		}
	}
	return len(seen)
}

// waitServed waits until n's cache shows vpnName with its id.
func (n *testNode) waitServed(t *testing.T, vpnName string) {
	t.Helper()
	require.Eventually(t, func() bool { _, ok := n.nets.ByName(vpnName); return ok }, 10*time.Second, 5*time.Millisecond)
}

// churnVPN creates namespace ns and VPN name on 10.77.0.0/24 with /28 blocks (14
// addresses in the first, which holds the gateway; 16 in the others), with an id.
func churnVPN(ctx context.Context, t *testing.T, c client.Client, name, ns string, id uint32) {
	t.Helper()
	require.NoError(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	v := &v1alpha1.VirtualPrivateNetwork{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.VirtualPrivateNetworkSpec{CIDR: "10.77.0.0/24", NodeBlockSize: 28, Namespaces: []string{ns}}}
	require.NoError(t, c.Create(ctx, v))
	setID(ctx, t, c, name, id)
}

// TestEmptyBlocksGivenBack, against a real API server, with node churn: node-1's pods
// fill three blocks; when only the first block's pods are left, the other two are given
// back once they have been empty for the grace period (not before), and the first
// (which holds the management address) stays; node-2 then claims a block node-1 gave
// back, node-1 claims the next free one and, when its pods are all gone, gives back
// every block, its management port first. A VPN the node keeps (Keep: the default VPN,
// a sharing VPN) keeps one block without pods. Every address held is inside a block of
// its node, and no address is held twice.
func TestEmptyBlocksGivenBack(t *testing.T) {
	api := testenv.StartAPIServer(t)
	ctx := testCtx(t)
	c := startCache(ctx, t, api)
	churnVPN(ctx, t, api.Client, "blue", "churn", 7)
	var clockMu sync.Mutex
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return clock }
	tick := func(d time.Duration) { clockMu.Lock(); clock = clock.Add(d); clockMu.Unlock() }
	n1 := newTestNode(ctx, t, api, c, "node-1", time.Minute, now)
	n2 := newTestNode(ctx, t, api, c, "node-2", time.Minute, now)
	n1.waitServed(t, "blue")
	release := func(n *testNode) []string {
		t.Helper()
		got, err := n.rel.Release(ctx)
		require.NoError(t, err)
		return got
	}
	p := netip.MustParsePrefix

	// 40 pods: 13 in the first block (besides gateway, network address and management
	// address), then 16 and 11.
	var pods []string
	for i := range 40 {
		id := fmt.Sprint("p", i)
		_, err := n1.add(ctx, "churn", id)
		require.NoError(t, err)
		pods = append(pods, id)
	}
	require.ElementsMatch(t, []netip.Prefix{p("10.77.0.0/28"), p("10.77.0.16/28"), p("10.77.0.32/28")},
		n1.blocks(ctx, t, api.Client, "blue"))
	requireHeldInOwnBlocks(ctx, t, api.Client, "blue", n1)
	for _, id := range pods[13:] {
		n1.del(ctx, t, id)
	}
	require.Empty(t, release(n1), "empty for less than the grace period")
	tick(30 * time.Second)
	require.Empty(t, release(n1))
	tick(31 * time.Second)
	require.ElementsMatch(t, []string{"blue.10-77-0-16-28", "blue.10-77-0-32-28"}, release(n1))
	require.Equal(t, []netip.Prefix{p("10.77.0.0/28")}, n1.blocks(ctx, t, api.Client, "blue"))
	fenced, err := n1.store.Fenced(ctx, "blue")
	require.NoError(t, err)
	require.Equal(t, []netip.Prefix{p("10.77.0.16/28"), p("10.77.0.32/28")}, fenced)
	require.Empty(t, n1.removed, "pods are left: the management port stays")

	// node-2 takes the lowest free block: one node-1 gave back.
	_, err = n2.add(ctx, "churn", "q0")
	require.NoError(t, err)
	require.Equal(t, []netip.Prefix{p("10.77.0.16/28")}, n2.blocks(ctx, t, api.Client, "blue"))
	// node-1 grows again: its next free block (node-2 has .16), one it gave back too.
	require.Eventually(t, func() bool {
		net, ok := n1.nets.ByName("blue")
		return ok && len(net.Ranges) == 1
	}, 10*time.Second, 5*time.Millisecond, "node-1's cache sees its blocks go")
	for i := range 5 {
		_, err := n1.add(ctx, "churn", fmt.Sprint("r", i))
		require.NoError(t, err)
	}
	require.ElementsMatch(t, []netip.Prefix{p("10.77.0.0/28"), p("10.77.0.32/28")}, n1.blocks(ctx, t, api.Client, "blue"))
	fenced, err = n1.store.Fenced(ctx, "blue")
	require.NoError(t, err)
	require.Equal(t, []netip.Prefix{p("10.77.0.16/28")}, fenced, "claimed again, the block is open again")
	require.Equal(t, 13+5+1+1+1, requireHeldInOwnBlocks(ctx, t, api.Client, "blue", n1, n2), "pods and management addresses")

	// All of node-1's pods go: after the grace period every block goes, the port first.
	for _, id := range pods[:13] {
		n1.del(ctx, t, id)
	}
	for i := range 5 {
		n1.del(ctx, t, fmt.Sprint("r", i))
	}
	require.Empty(t, release(n1))
	tick(time.Minute)
	require.ElementsMatch(t, []string{"blue.10-77-0-0-28", "blue.10-77-0-32-28"}, release(n1))
	require.Empty(t, n1.blocks(ctx, t, api.Client, "blue"))
	require.Equal(t, []string{"blue"}, n1.removed)
	require.Equal(t, []netip.Prefix{p("10.77.0.16/28")}, n2.blocks(ctx, t, api.Client, "blue"), "node-2's block stays")
	require.Equal(t, 2, requireHeldInOwnBlocks(ctx, t, api.Client, "blue", n1, n2))

	// A VPN the node keeps a block of keeps one without pods, and gives back the rest.
	n2.rel.Keep = func(context.Context) (map[string]bool, error) { return map[string]bool{"blue": true}, nil }
	for i := range 20 {
		_, err := n2.add(ctx, "churn", fmt.Sprint("s", i))
		require.NoError(t, err)
	}
	require.Len(t, n2.blocks(ctx, t, api.Client, "blue"), 2)
	n2.del(ctx, t, "q0")
	for i := range 20 {
		n2.del(ctx, t, fmt.Sprint("s", i))
	}
	require.Empty(t, release(n2))
	tick(time.Minute)
	require.Len(t, release(n2), 1)
	require.Equal(t, []netip.Prefix{p("10.77.0.16/28")}, n2.blocks(ctx, t, api.Client, "blue"),
		"the block with the management address stays")
	require.Empty(t, n2.removed)
}

// TestReleaseRacesAdd, against a real API server, with the node reading blocks through
// an informer cache as the controller does: an ADD runs at the same moment as a release
// pass that gives back the node's only (empty) block, 60 times with varying head starts.
// Whichever wins, the ADD's address lies in a block the node holds afterwards — never in
// one it gave back — and no address is held twice.
func TestReleaseRacesAdd(t *testing.T) {
	api := testenv.StartAPIServer(t)
	ctx := testCtx(t)
	c := startCache(ctx, t, api)
	churnVPN(ctx, t, api.Client, "blue", "race", 8)
	n1 := newTestNode(ctx, t, api, c, "node-1", 0, nil)
	n1.waitServed(t, "blue")
	released, kept := 0, 0
	for round := range 60 {
		// The node holds a block with no pod in it, as its cache shows.
		id := fmt.Sprint("warm", round)
		_, err := n1.add(ctx, "race", id)
		require.NoError(t, err)
		n1.del(ctx, t, id)
		require.Eventually(t, func() bool {
			net, ok := n1.nets.ByName("blue")
			return ok && len(net.Ranges) > 0
		}, 10*time.Second, 5*time.Millisecond)

		var wg sync.WaitGroup
		var addr netip.Addr
		var addErr, relErr error
		var got []string
		wg.Go(func() {
			time.Sleep(time.Duration(round%6) * 500 * time.Microsecond)
			addr, addErr = n1.add(ctx, "race", fmt.Sprint("pod", round))
		})
		wg.Go(func() { got, relErr = n1.rel.Release(ctx) })
		wg.Wait()
		require.NoError(t, relErr, "round %d", round)
		if addErr != nil && !errors.Is(addErr, ipam.ErrExhausted) {
			require.NoError(t, addErr, "round %d", round)
		}
		if addErr == nil {
			held := n1.blocks(ctx, t, api.Client, "blue")
			in := false
			for _, b := range held {
				in = in || b.Contains(addr)
			}
			require.True(t, in, "round %d: the ADD got %s, in none of the node's blocks %v (gave back %v)", round, addr, held, got)
		}
		requireHeldInOwnBlocks(ctx, t, api.Client, "blue", n1)
		if len(got) > 0 {
			released++
		} else {
			kept++
		}
		n1.del(ctx, t, fmt.Sprint("pod", round))
	}
	t.Logf("60 rounds: the release gave the block back in %d, the ADD's address kept it in %d", released, kept)
	require.NotZero(t, released, "the race never let a release through")
}

type noShared struct{}

func (noShared) SetShared(context.Context, []gateway.SharedService) error { return nil }

// TestSharingVPNBlockGivenBack, against a real API server: a VPN that shares a Service
// gets a block on a node without pods of it (its management port there is the source of
// the Service's connections from the node's other VPNs and host network), and the node
// keeps that one block through release passes; a VPN with no pods on the node that
// shares nothing gets none. When the VPN stops sharing, the node gives the block back
// (its management port first) and does not claim it again.
func TestSharingVPNBlockGivenBack(t *testing.T) {
	api := testenv.StartAPIServer(t)
	ctx := testCtx(t)
	c := startCache(ctx, t, api)
	churnVPN(ctx, t, api.Client, "platform", "mon", 11)
	churnVPN(ctx, t, api.Client, "quiet", "q", 12)
	for _, name := range []string{"platform", "quiet"} {
		require.NoError(t, retryConflict(func() error {
			v := getVPN(ctx, t, api.Client, name)
			v.Status.OVN = &v1alpha1.OVNStatus{Router: "r", Switch: "s"}
			return api.Client.Status().Update(ctx, v)
		}))
	}
	require.NoError(t, retryConflict(func() error {
		v := getVPN(ctx, t, api.Client, "platform")
		v.Spec.SharedServices = []string{"mon/push"}
		return api.Client.Update(ctx, v)
	}))
	require.NoError(t, api.Client.Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "mon", Name: "push"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 9091}}}}))

	n1 := newTestNode(ctx, t, api, c, "node-1", 0, nil)
	shr := &vpn.SharedServiceReconciler{Cache: c, Networks: n1.nets, Gateway: noShared{}, Log: logr.Discard()}
	n1.rel.Keep = shr.Holders
	require.Eventually(t, func() bool {
		s, err := shr.Shared(ctx)
		return err == nil && len(s) == 1
	}, 10*time.Second, 10*time.Millisecond, "the cache shows the shared Service")
	_, err := shr.Reconcile(ctx, ctrl.Request{})
	require.NoError(t, err)
	require.Len(t, n1.blocks(ctx, t, api.Client, "platform"), 1, "a block of the sharing VPN, without pods of it")
	require.Empty(t, n1.blocks(ctx, t, api.Client, "quiet"), "no block of a VPN without pods here that shares nothing")
	for range 3 {
		got, err := n1.rel.Release(ctx)
		require.NoError(t, err)
		require.Empty(t, got, "the sharing VPN's block stays")
	}

	require.NoError(t, retryConflict(func() error {
		v := getVPN(ctx, t, api.Client, "platform")
		v.Spec.SharedServices = nil
		return api.Client.Update(ctx, v)
	}))
	require.Eventually(t, func() bool {
		s, err := shr.Shared(ctx)
		return err == nil && len(s) == 0
	}, 10*time.Second, 10*time.Millisecond)
	got, err := n1.rel.Release(ctx)
	require.NoError(t, err)
	require.Len(t, got, 1, "sharing stopped: the block goes")
	require.Empty(t, n1.blocks(ctx, t, api.Client, "platform"))
	require.Equal(t, []string{"platform"}, n1.removed, "its management port first")
	_, err = shr.Reconcile(ctx, ctrl.Request{})
	require.NoError(t, err)
	require.Empty(t, n1.blocks(ctx, t, api.Client, "platform"), "not claimed again")
	requireHeldInOwnBlocks(ctx, t, api.Client, "platform", n1)
}

// TestReleaseRestoresPortWhenAddWins: a VPN leaves the node (no pod, every block empty
// past the grace period), so its management port goes first; but an ADD takes an
// address of its block right then (here: while the port is being removed, after the
// pass looked at the store), so the fence fails and the block stays. The VPN has a pod
// on this node after all: the releaser must build its management port again (Restore),
// or the node could not reach the pod (kubelet's probes) until some other event.
func TestReleaseRestoresPortWhenAddWins(t *testing.T) {
	api := testenv.StartAPIServer(t)
	ctx := testCtx(t)
	c := startCache(ctx, t, api)
	churnVPN(ctx, t, api.Client, "blue", "late", 9)
	n1 := newTestNode(ctx, t, api, c, "node-1", 0, nil)
	n1.waitServed(t, "blue")
	_, err := n1.add(ctx, "late", "gone")
	require.NoError(t, err)
	n1.del(ctx, t, "gone")
	require.Eventually(t, func() bool {
		net, ok := n1.nets.ByName("blue")
		return ok && len(net.Ranges) == 1
	}, 10*time.Second, 5*time.Millisecond, "the node's cache shows its block")

	var late netip.Addr
	var restored []string
	rm := &racingRemover{node: n1, during: func() {
		late, err = n1.add(ctx, "late", "late-pod") // the ADD that wins
		require.NoError(t, err)
	}}
	n1.rel.Gateway = rm
	n1.rel.Restore = func(_ context.Context, vpnName string) error {
		restored = append(restored, vpnName)
		return nil
	}
	got, err := n1.rel.Release(ctx)
	require.NoError(t, err)
	require.Empty(t, got, "the block holds the late pod's address: it stays")
	require.Equal(t, []string{"blue"}, n1.removed, "the port went first")
	require.Equal(t, []string{"blue"}, restored, "and comes back, the VPN has a pod here")
	blocks := n1.blocks(ctx, t, api.Client, "blue")
	require.Len(t, blocks, 1)
	require.True(t, blocks[0].Contains(late))
	fenced, err := n1.store.Fenced(ctx, "blue")
	require.NoError(t, err)
	require.Empty(t, fenced)
}

// racingRemover removes the management port as testNode does, then runs during: what
// happens on the node between the release pass's look at the store and its fence.
type racingRemover struct {
	node   *testNode
	during func()
}

func (r *racingRemover) Remove(ctx context.Context, vpnName string) error {
	if err := r.node.Remove(ctx, vpnName); err != nil {
		return err
	}
	r.during()
	return nil
}
