package e2e

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
	"github.com/sdncni/sdncni/internal/testenv"
)

const vpnPrefix = "sdncni-vpn-"

// startVPNController runs our controller on OVS/OVN node o in VPN mode (--kubeconfig).
func startVPNController(t *testing.T, o *testenv.OVN, api *testenv.APIServer, cidr string, extra ...string) *node {
	t.Helper()
	// The API server listens on the root netns' loopback; the controller lives in the node's.
	u, err := url.Parse(api.Config.Host)
	require.NoError(t, err)
	testenv.ForwardIntoNetNS(t, o.NetNSPath, u.Host)
	work, err := os.MkdirTemp("", vpnPrefix+"ctl")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(work) })
	n := &node{t: t, ovn: o, bin: binaries(t), work: work, socket: filepath.Join(work, "cni.sock"),
		store: filepath.Join(work, "ipam.json"), pinDir: "/sys/fs/bpf/" + vpnPrefix + randHex(4), cidr: cidr,
		extra: append([]string{"--mtu", "0", "--kubeconfig", api.Kubeconfig, "--node-block-size", "28",
			"--service-cidr", testenv.ServiceCIDR}, extra...)}
	t.Cleanup(func() {
		n.stopController()
		_ = os.RemoveAll(n.pinDir)
		if t.Failed() {
			t.Logf("controller log of %s:\n%s", o.SystemID, n.controllerLog())
		}
	})
	n.startController()
	return n
}

func createNamespaces(t *testing.T, api *testenv.APIServer, names ...string) {
	t.Helper()
	for _, name := range names {
		err := api.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
		if err != nil && !strings.Contains(err.Error(), "already exists") {
			require.NoError(t, err)
		}
	}
}

func createVPN(t *testing.T, api *testenv.APIServer, name, cidr string, namespaces ...string) {
	t.Helper()
	v := &v1alpha1.VirtualPrivateNetwork{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.VirtualPrivateNetworkSpec{CIDR: cidr, Namespaces: namespaces, NodeBlockSize: 28}}
	require.NoError(t, api.Client.Create(context.Background(), v))
}

// setNamespaces changes which namespaces a VPN claims (retrying on conflicts).
func setNamespaces(t *testing.T, api *testenv.APIServer, name string, namespaces ...string) {
	t.Helper()
	require.Eventually(t, func() bool {
		var v v1alpha1.VirtualPrivateNetwork
		if api.Client.Get(context.Background(), client.ObjectKey{Name: name}, &v) != nil {
			return false
		}
		v.Spec.Namespaces = namespaces
		return api.Client.Update(context.Background(), &v) == nil
	}, 10*time.Second, 100*time.Millisecond)
}

// waitVPN waits until cond holds for the VPN and returns it and how long that took.
func waitVPN(t *testing.T, api *testenv.APIServer, name string, cond func(*v1alpha1.VirtualPrivateNetwork) bool) (*v1alpha1.VirtualPrivateNetwork, time.Duration) {
	t.Helper()
	start := time.Now()
	var v v1alpha1.VirtualPrivateNetwork
	require.Eventually(t, func() bool {
		return api.Client.Get(context.Background(), client.ObjectKey{Name: name}, &v) == nil && cond(&v)
	}, 30*time.Second, 20*time.Millisecond, "vpn %s: %+v", name, v.Status)
	return &v, time.Since(start)
}

func ready(v *v1alpha1.VirtualPrivateNetwork) bool {
	return meta.IsStatusConditionTrue(v.Status.Conditions, v1alpha1.ConditionReady) && v.Status.VPNID != 0
}

// udpEchoName makes p answer every datagram on udpPort with its name.
const udpPort = 7002

func serveUDPName(t *testing.T, p *pod) {
	t.Helper()
	_, pc := listenIn(t, p, "udp4", fmt.Sprintf(":%d", udpPort))
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 64)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo([]byte(p.name), from)
		}
	}()
}

// udpName sends a few datagrams from p to dst and returns the name that answered, or ""
// when nothing did within the timeout.
func udpName(p *pod, dst netip.Addr, timeout time.Duration) (string, error) {
	return udpNameSized(p, dst, 3, timeout)
}

// udpNameSized is udpName with datagrams of size bytes (larger than the MTU: sent as IP
// fragments).
func udpNameSized(p *pod, dst netip.Addr, size int, timeout time.Duration) (string, error) {
	c, err := dialFrom(p, "udp4", netip.AddrPortFrom(dst, udpPort).String(), time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 64)
	msg := []byte(strings.Repeat("w", size))
	for time.Now().Before(deadline) {
		if _, err := c.Write(msg); err != nil {
			return "", err
		}
		_ = c.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
		n, err := c.Read(buf)
		if err == nil {
			return string(buf[:n]), nil
		}
		if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
			return "", err
		}
	}
	return "", nil
}

// tpod is a pod of the truth table: which VPN it is attached to and its address.
type tpod struct {
	*pod
	vpn string
	ip  netip.Addr
}

// truthTable probes every ordered pair over TCP and UDP: same VPN connects and the
// right pod answers; a pod of another VPN is never reached — where its address is free
// in the prober's VPN the probe times out (no refusal, no answer), and where the
// prober's own VPN holds the same address (overlapping CIDRs) only that pod answers.
func truthTable(t *testing.T, pods []*tpod) {
	t.Helper()
	var mu sync.Mutex
	var bad []string
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	same, cross := 0, 0
	for _, a := range pods {
		for _, b := range pods {
			if a == b {
				continue
			}
			want := b.name
			if a.vpn != b.vpn {
				want = holder(pods, a, b.ip)
				cross++
			} else {
				same++
			}
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				var problem string
				if want != "" {
					if got, err := banner(a.pod, b.ip, 5*time.Second); err != nil || got != want {
						problem = fmt.Sprintf("TCP: want %q, got %q (%v)", want, got, err)
					} else if got, err := udpName(a.pod, b.ip, 3*time.Second); err != nil || got != want {
						problem = fmt.Sprintf("UDP: want %q, got %q (%v)", want, got, err)
					}
				} else {
					problem = cannotReach(a.pod, b.ip)
					if got, _ := udpName(a.pod, b.ip, 1200*time.Millisecond); got != "" {
						problem += fmt.Sprintf(" UDP answered by %q", got)
					}
				}
				if problem != "" {
					mu.Lock()
					bad = append(bad, fmt.Sprintf("%s(%s) → %s(%s, %s): %s", a.name, a.vpn, b.name, b.vpn, b.ip, problem))
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	sort.Strings(bad)
	for _, b := range bad {
		t.Error(b)
	}
	t.Logf("truth table: %d same-VPN ordered pairs, %d cross-VPN ordered pairs, %d failures", same, cross, len(bad))
}

// holder names the pod of a's own VPN (a included) that holds ip, or "".
func holder(pods []*tpod, a *tpod, ip netip.Addr) string {
	for _, p := range pods {
		if p.vpn == a.vpn && p.ip == ip {
			return p.name
		}
	}
	return ""
}

// TestVPNLifecycle: one node with a real API server. The default VPN is created from the
// controller's flags; VPNs become Ready with their OVN rows; a namespace claimed twice is
// a Conflict on both and its pods wait (code 11); deleting a VPN waits for its pods, then
// removes its OVN rows and blocks.
func TestVPNLifecycle(t *testing.T) {
	api := testenv.StartAPIServer(t)
	createNamespaces(t, api, "sdncni-system", "red", "blue", "both")
	o := testenv.StartOVN(t)
	n := startVPNController(t, o, api, "10.82.0.0/16")

	_, took := waitVPN(t, api, v1alpha1.DefaultVPNName, ready)
	t.Logf("default VPN Ready %v after the controller started serving", took)

	createVPN(t, api, "red", "10.83.0.0/24", "red", "both")
	start := time.Now()
	redV, _ := waitVPN(t, api, "red", ready)
	t.Logf("VPN created → Ready: %v", time.Since(start))
	require.Equal(t, "sdncni-red", redV.Status.OVN.Switch)
	require.Contains(t, o.Nbctl(t, "ls-list"), "sdncni-red")
	require.Contains(t, o.Nbctl(t, "lr-list"), "sdncni-red-lr")

	out, err := api.Kubectl(context.Background(), nil, "get", "vpn")
	require.NoError(t, err, out)
	require.Contains(t, out, "CIDR")
	require.Regexp(t, `red\s+10\.83\.0\.0/24\s+\["red","both"\]\s+0\s+True`, out)

	createVPN(t, api, "blue", "10.83.0.0/24", "blue", "both") // overlaps red; claims "both" too
	for _, name := range []string{"red", "blue"} {
		waitVPN(t, api, name, func(v *v1alpha1.VirtualPrivateNetwork) bool {
			c := meta.FindStatusCondition(v.Status.Conditions, v1alpha1.ConditionConflict)
			return c != nil && c.Status == metav1.ConditionTrue && strings.Contains(c.Message, "both")
		})
	}
	inBoth := newPodIn(t, "p-both", "both")
	_, err = n.add(t, "1.1.0", inBoth)
	require.Equal(t, uint(11), cniCode(t, err), "a pod of a namespace in conflict waits")
	require.Empty(t, n.leftovers(t))

	red1, blue1 := newPodIn(t, "red1", "red"), newPodIn(t, "blue1", "blue")
	ipRed := n.mustAdd(t, "1.1.0", red1)
	ipBlue := n.mustAdd(t, "1.1.0", blue1)
	require.True(t, netip.MustParsePrefix("10.83.0.0/28").Contains(ipRed), "first /28 block: %s", ipRed)
	require.True(t, netip.MustParsePrefix("10.83.0.16/28").Contains(ipBlue),
		"a node never holds overlapping blocks of two VPNs (docs/gateway.md): %s", ipBlue)
	waitVPN(t, api, "red", func(v *v1alpha1.VirtualPrivateNetwork) bool { return v.Status.Pods == 1 })
	var blocks v1alpha1.VPNBlockList
	require.NoError(t, api.Client.List(context.Background(), &blocks, client.MatchingLabels{v1alpha1.LabelVPN: "red"}))
	require.Len(t, blocks.Items, 1)
	require.Equal(t, o.SystemID, blocks.Items[0].Spec.Node)

	// Deleting red waits for its pod.
	require.NoError(t, api.Client.Delete(context.Background(), redV))
	waitVPN(t, api, "red", func(v *v1alpha1.VirtualPrivateNetwork) bool {
		c := meta.FindStatusCondition(v.Status.Conditions, v1alpha1.ConditionReady)
		return c != nil && c.Reason == v1alpha1.ReasonDeleting
	})
	require.Contains(t, o.Nbctl(t, "ls-list"), "sdncni-red", "rows stay while a pod is attached")
	require.NoError(t, n.check(t, "1.1.0", red1), "the pod keeps working while its VPN is being deleted")
	require.NoError(t, n.del(t, "1.1.0", red1))
	require.Eventually(t, func() bool {
		var v v1alpha1.VirtualPrivateNetwork
		err := api.Client.Get(context.Background(), client.ObjectKey{Name: "red"}, &v)
		return err != nil && strings.Contains(err.Error(), "not found")
	}, 30*time.Second, 100*time.Millisecond, "red is gone once its last pod is")
	require.NotContains(t, o.Nbctl(t, "ls-list"), "sdncni-red")
	require.NotContains(t, o.Nbctl(t, "lr-list"), "sdncni-red-lr")
	require.NoError(t, api.Client.List(context.Background(), &blocks, client.MatchingLabels{v1alpha1.LabelVPN: "red"}))
	require.Empty(t, blocks.Items)

	require.NoError(t, n.del(t, "1.1.0", blue1))
	require.Empty(t, n.leftovers(t))
}

// TestVPNTruthTable: two nodes, a real API server; namespaces x, y, z with a pod on each
// node; VPN-1 = {x, y}, VPN-2 = {z} on an overlapping CIDR. Every ordered pair is
// probed over TCP and UDP: same VPN connects, different VPNs do not. Then y moves to
// VPN-2 (new pods there land in VPN-2, old ones stay), and every controller restarts;
// the table holds each time.
func TestVPNTruthTable(t *testing.T) {
	api := testenv.StartAPIServer(t)
	createNamespaces(t, api, "sdncni-system", "x", "y", "z")
	c := testenv.StartCluster(t, 2)
	nodes := []*node{
		startVPNController(t, c.Nodes[0], api, "10.84.0.0/16"),
		startVPNController(t, c.Nodes[1], api, "10.84.0.0/16"),
	}
	createVPN(t, api, "vpn-1", "10.91.0.0/24", "x", "y")
	createVPN(t, api, "vpn-2", "10.91.0.0/23", "z") // overlaps vpn-1
	waitVPN(t, api, "vpn-1", ready)
	waitVPN(t, api, "vpn-2", ready)

	var pods []*tpod
	add := func(name, ns, vpn string, n *node) *tpod {
		p := &tpod{pod: newPodIn(t, name, ns), vpn: vpn}
		p.ip = n.mustAdd(t, "1.1.0", p.pod)
		serveBanner(t, p.pod)
		serveUDPName(t, p.pod)
		t.Cleanup(func() { _ = n.del(t, "1.1.0", p.pod) })
		pods = append(pods, p)
		return p
	}
	for _, ns := range []struct{ name, vpn string }{{"x", "vpn-1"}, {"y", "vpn-1"}, {"z", "vpn-2"}} {
		add(ns.name+"-a", ns.name, ns.vpn, nodes[0])
		add(ns.name+"-b", ns.name, ns.vpn, nodes[1])
	}
	for _, p := range pods {
		t.Logf("%s: %s in %s", p.name, p.ip, p.vpn)
	}
	// Let ARP and the tunnels settle before judging: the first cross-node packets may be
	// lost while ovn-controller installs flows, and a pod that probed an address before
	// its new owner existed keeps a FAILED neighbour entry for a while.
	warm := func() {
		for _, a := range pods {
			for _, b := range pods {
				if a != b && a.vpn == b.vpn {
					waitPing(t, a.pod, b.ip, 20*time.Second)
				}
			}
		}
	}
	warm()
	t.Run("initial", func(t *testing.T) { truthTable(t, pods) })

	// y moves to vpn-2: new pods of y land there; y-a and y-b stay on vpn-1.
	setNamespaces(t, api, "vpn-1", "x")
	setNamespaces(t, api, "vpn-2", "z", "y")
	waitVPN(t, api, "vpn-2", func(v *v1alpha1.VirtualPrivateNetwork) bool { return v.Status.PodsOnOldVPN == 2 })
	add("y-c", "y", "vpn-2", nodes[0])
	add("y-d", "y", "vpn-2", nodes[1])
	warm()
	t.Run("after move", func(t *testing.T) { truthTable(t, pods) })

	for _, n := range nodes {
		n.restartController(n.extra...)
	}
	t.Run("after restart", func(t *testing.T) { truthTable(t, pods) })

	// The cross-node fast path on: same-VPN traffic between the nodes takes the kernel's
	// VXLAN with VNI = the VPN's id, the other node found from its VPNBlocks and its
	// Node object. The VPNs overlap, so a receiver that delivered by address alone
	// would fail the table.
	for i := range nodes {
		createNode(t, api, c.Nodes[i].SystemID, c.KernelIP(i))
	}
	for i, n := range nodes {
		n.restartController(append(n.extra, "--metrics-addr", metricsAddr, "--cross-node-vxlan", xnodeDev,
			"--cross-node-underlay-ip", c.KernelIP(i))...)
	}
	for i, n := range nodes {
		waitRemote(t, n, remoteWant(t, api, c.Nodes[i].SystemID)) // the other node's blocks
	}
	warm()
	xtx := func() int64 {
		return nodes[0].datapathCounters(t)["xnode_tx"] + nodes[1].datapathCounters(t)["xnode_tx"]
	}
	before := xtx()
	t.Run("cross-node path on", func(t *testing.T) { truthTable(t, pods) })
	require.Greater(t, xtx()-before, int64(0), "same-VPN traffic between the nodes took VXLAN")

	// Per VPN: vpn-2 off takes its blocks off the path (its pods' traffic takes Geneve),
	// with no pod restarted; on again brings them back.
	zA, zB := pods[4], pods[5]
	require.Equal(t, []string{"z-a", "z-b"}, []string{zA.name, zB.name})
	setCrossNode(t, api, "vpn-2", false)
	for i, n := range nodes {
		waitRemote(t, n, remoteWant(t, api, c.Nodes[i].SystemID, "vpn-2"))
	}
	before = xtx()
	waitPing(t, zA.pod, zB.ip, 10*time.Second)
	pingRTT(t, zA.pod, zB.ip, 10, 56, false)
	require.Zero(t, xtx()-before, "vpn-2's traffic took VXLAN with its crossNodeFastPath off")
	t.Run("vpn-2's cross-node path off", func(t *testing.T) { truthTable(t, pods) })
	setCrossNode(t, api, "vpn-2", true)
	for i, n := range nodes {
		waitRemote(t, n, remoteWant(t, api, c.Nodes[i].SystemID))
	}
	before = xtx()
	pingRTT(t, zA.pod, zB.ip, 10, 56, false)
	require.GreaterOrEqual(t, xtx()-before, int64(20), "vpn-2's pings and replies took VXLAN again")
}

// createNode creates the Node object of a simulated node, with ip as its InternalIP
// (the address other nodes reach its cross-node path at).
func createNode(t *testing.T, api *testenv.APIServer, name, ip string) {
	t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}}}}
	require.NoError(t, api.Client.Create(context.Background(), n))
	t.Cleanup(func() { _ = api.Client.Delete(context.Background(), n) })
}

// remoteWant is how many blocks the cross-node path of node self reaches: the VPNBlocks
// of the other nodes (every VPN's, the default VPN's management addresses too), but
// those of the VPNs left out.
func remoteWant(t *testing.T, api *testenv.APIServer, self string, leftOut ...string) int {
	t.Helper()
	var l v1alpha1.VPNBlockList
	require.NoError(t, api.Client.List(context.Background(), &l))
	n := 0
	for _, b := range l.Items {
		if b.Spec.Node != self && !slices.Contains(leftOut, b.Spec.VPN) {
			n++
		}
	}
	return n
}

// setCrossNode sets a VPN's spec.crossNodeFastPath.
func setCrossNode(t *testing.T, api *testenv.APIServer, name string, on bool) {
	t.Helper()
	require.Eventually(t, func() bool {
		var v v1alpha1.VirtualPrivateNetwork
		if api.Client.Get(context.Background(), client.ObjectKey{Name: name}, &v) != nil {
			return false
		}
		v.Spec.CrossNodeFastPath = &on
		return api.Client.Update(context.Background(), &v) == nil
	}, 10*time.Second, 100*time.Millisecond)
}

// TestVPNBlocksGrow: when the node's block of a VPN fills, ADD claims the next block
// (a new VPNBlock) and goes on; when the CIDR has no free block left, ADD fails with the
// exhausted code and leaves nothing behind.
func TestVPNBlocksGrow(t *testing.T) {
	api := testenv.StartAPIServer(t)
	createNamespaces(t, api, "sdncni-system", "small")
	o := testenv.StartOVN(t)
	n := startVPNController(t, o, api, "10.85.0.0/16")
	// A /28 in /29 blocks: block 0 loses the network address, the gateway and the node's
	// management port (5 pods), block 1 the broadcast address (7 pods).
	v := &v1alpha1.VirtualPrivateNetwork{ObjectMeta: metav1.ObjectMeta{Name: "small"},
		Spec: v1alpha1.VirtualPrivateNetworkSpec{CIDR: "10.86.0.0/28", Namespaces: []string{"small"}, NodeBlockSize: 29}}
	require.NoError(t, api.Client.Create(context.Background(), v))
	waitVPN(t, api, "small", ready)

	var pods []*pod
	seen := map[netip.Addr]bool{}
	for i := range 12 {
		p := newPodIn(t, fmt.Sprintf("s%d", i), "small")
		ip := n.mustAdd(t, "1.1.0", p)
		require.False(t, seen[ip], "duplicate %s", ip)
		seen[ip] = true
		pods = append(pods, p)
	}
	var blocks v1alpha1.VPNBlockList
	require.NoError(t, api.Client.List(context.Background(), &blocks, client.MatchingLabels{v1alpha1.LabelVPN: "small"}))
	require.Len(t, blocks.Items, 2, "the second block was claimed when the first filled")

	extra := newPodIn(t, "s-extra", "small")
	_, err := n.add(t, "1.1.0", extra)
	require.Equal(t, uint(100), cniCode(t, err), "no block left: pool exhausted")
	for _, p := range pods {
		require.NoError(t, n.del(t, "1.1.0", p))
	}
	require.Empty(t, n.leftovers(t))
}
