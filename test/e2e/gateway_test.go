package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
	"github.com/sdncni/sdncni/internal/testenv"
	"github.com/sdncni/sdncni/pkg/gateway"
)

const gwPrefix = "sdncni-gw-"

// dialIn dials from the network namespace at netnsPath (a node's).
func dialIn(netnsPath, network, addr string, timeout time.Duration) (net.Conn, error) {
	nns, err := ns.GetNS(netnsPath)
	if err != nil {
		return nil, err
	}
	defer nns.Close()
	var c net.Conn
	err = nns.Do(func(ns.NetNS) error {
		var err error
		c, err = net.DialTimeout(network, addr, timeout)
		return err
	})
	return c, err
}

// nodeBanner reads the banner of the pod at dst from the node's netns.
func nodeBanner(netnsPath string, dst netip.Addr, timeout time.Duration) (string, error) {
	c, err := dialIn(netnsPath, "tcp4", netip.AddrPortFrom(dst, bannerPort).String(), timeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	return string(b), err
}

// nodeUDPName asks the pod at dst for its name over UDP from the node's netns.
func nodeUDPName(netnsPath string, dst netip.Addr, timeout time.Duration) (string, error) {
	c, err := dialIn(netnsPath, "udp4", netip.AddrPortFrom(dst, udpPort).String(), time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	buf := make([]byte, 64)
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); {
		if _, err := c.Write([]byte("who")); err != nil {
			return "", err
		}
		_ = c.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
		if n, err := c.Read(buf); err == nil {
			return string(buf[:n]), nil
		}
	}
	return "", nil
}

// mgmtIP is the address of vpn's management port on node o, or an invalid Addr.
func mgmtIP(t *testing.T, o *testenv.OVN, vpn string) netip.Addr {
	t.Helper()
	port := gateway.NamesFor(vpn, o.SystemID).Port
	out, err := exec.Command("ip", "-n", o.NetNS, "-o", "-4", "addr", "show", "dev", port).CombinedOutput()
	if err != nil {
		return netip.Addr{}
	}
	m := regexp.MustCompile(`inet (\S+)/32`).FindStringSubmatch(string(out))
	if m == nil {
		return netip.Addr{}
	}
	a, _ := netip.ParseAddr(m[1])
	return a
}

// rttFrom pings dst count times from the netns and returns the average RTT.
func rttFrom(t *testing.T, netnsPath string, dst netip.Addr, count int) time.Duration {
	t.Helper()
	out, err := exec.Command("nsenter", "--net="+netnsPath, "ping", "-q", "-c", strconv.Itoa(count), "-i", "0.02",
		"-W", "1", dst.String()).CombinedOutput()
	require.NoError(t, err, string(out))
	m := regexp.MustCompile(`= [\d.]+/([\d.]+)/`).FindStringSubmatch(string(out))
	require.NotNil(t, m, string(out))
	ms, err := strconv.ParseFloat(m[1], 64)
	require.NoError(t, err)
	return time.Duration(ms * float64(time.Millisecond))
}

// outside makes a netns that plays "the world" for node o: a veth from the node netns
// (198.18.0.1/30, a benchmark range) to it (198.18.0.2/30), the node's default route
// through it, and a TCP server on 198.18.0.2:7100 that answers with the client's address.
func outside(t *testing.T, o *testenv.OVN) string {
	t.Helper()
	name := gwPrefix + "out-" + randHex(3)
	run := func(args ...string) {
		t.Helper()
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		require.NoError(t, err, "%v: %s", args, out)
	}
	run("ip", "netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	in, ext := "gwi"+randHex(3), "gwo"+randHex(3)
	run("ip", "-n", name, "link", "add", ext, "type", "veth", "peer", "name", in, "netns", o.NetNS)
	t.Cleanup(func() { _ = exec.Command("ip", "-n", o.NetNS, "link", "del", in).Run() })
	run("ip", "-n", name, "addr", "add", "198.18.0.2/30", "dev", ext)
	run("ip", "-n", name, "link", "set", ext, "up")
	run("ip", "-n", name, "link", "set", "lo", "up")
	run("ip", "-n", o.NetNS, "addr", "add", "198.18.0.1/30", "dev", in)
	run("ip", "-n", o.NetNS, "link", "set", in, "up")
	run("ip", "-n", o.NetNS, "route", "replace", "default", "via", "198.18.0.2")
	t.Cleanup(func() { _ = exec.Command("ip", "-n", o.NetNS, "route", "del", "default", "via", "198.18.0.2").Run() })

	ons, err := ns.GetNS("/run/netns/" + name)
	require.NoError(t, err)
	defer ons.Close()
	var l net.Listener
	require.NoError(t, ons.Do(func(ns.NetNS) error {
		var err error
		l, err = net.Listen("tcp4", "198.18.0.2:7100")
		return err
	}))
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
			_, _ = io.WriteString(c, host)
			_ = c.Close()
		}
	}()
	return "198.18.0.2:7100"
}

// whoAmIOutside connects from p to the outside server and returns the source address
// the server saw.
func whoAmIOutside(p *pod, addr string, timeout time.Duration) (string, error) {
	c, err := dialFrom(p, "tcp4", addr, timeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	return string(b), err
}

// TestGatewayNodeToPodAndEgress: one node, a real API server, two VPNs with the same
// CIDR and two pods in each. The node's blocks of the two VPNs do not overlap, so the
// four pods have four addresses; from the node's netns each answers TCP and UDP at its
// own address. A pod cannot reach the other VPN's pod through the node (routed via its
// management port or its gateway). Pods of both VPNs reach a server outside, which sees
// the node's address. Deleting a VPN removes its management port from the node.
func TestGatewayNodeToPodAndEgress(t *testing.T) {
	api := testenv.StartAPIServer(t)
	createNamespaces(t, api, "sdncni-system", "gw-a", "gw-b")
	o := testenv.StartOVN(t)
	n := startVPNController(t, o, api, "10.87.0.0/16")
	createVPN(t, api, "gw-1", "10.92.0.0/24", "gw-a")
	createVPN(t, api, "gw-2", "10.92.0.0/24", "gw-b") // the same CIDR
	waitVPN(t, api, "gw-1", ready)
	waitVPN(t, api, "gw-2", ready)

	var pods []*tpod
	for _, s := range []struct{ name, ns, vpn string }{
		{"a1", "gw-a", "gw-1"}, {"a2", "gw-a", "gw-1"}, {"b1", "gw-b", "gw-2"}, {"b2", "gw-b", "gw-2"},
	} {
		p := &tpod{pod: newPodIn(t, s.name, s.ns), vpn: s.vpn}
		p.ip = n.mustAdd(t, "1.1.0", p.pod)
		serveBanner(t, p.pod)
		serveUDPName(t, p.pod)
		t.Cleanup(func() { _ = n.del(t, "1.1.0", p.pod) })
		pods = append(pods, p)
		t.Logf("%s: %s in %s", p.name, p.ip, p.vpn)
	}
	seen := map[netip.Addr]string{}
	for _, p := range pods {
		require.Empty(t, seen[p.ip], "%s and %s share %s on one node", seen[p.ip], p.name, p.ip)
		seen[p.ip] = p.name
	}
	var mp1, mp2 netip.Addr
	require.Eventually(t, func() bool {
		mp1, mp2 = mgmtIP(t, o, "gw-1"), mgmtIP(t, o, "gw-2")
		return mp1.IsValid() && mp2.IsValid()
	}, 30*time.Second, 100*time.Millisecond, "management ports of both VPNs on the node")
	t.Logf("management ports: gw-1 %s, gw-2 %s", mp1, mp2)

	t.Run("node to pod", func(t *testing.T) {
		for _, p := range pods {
			start := time.Now()
			var got string
			require.Eventually(t, func() bool {
				got, _ = nodeBanner(o.NetNSPath, p.ip, time.Second)
				return got == p.name
			}, 20*time.Second, 100*time.Millisecond, "node → %s (%s) over TCP: got %q", p.name, p.ip, got)
			first := time.Since(start)
			got, err := nodeUDPName(o.NetNSPath, p.ip, 3*time.Second)
			require.NoError(t, err)
			require.Equal(t, p.name, got, "node → %s (%s) over UDP", p.name, p.ip)
			t.Logf("node → %s (%s): first TCP answer after %v, ping RTT %v", p.name, p.ip, first.Round(time.Millisecond),
				rttFrom(t, o.NetNSPath, p.ip, 20))
		}
	})

	t.Run("no path between VPNs through the node", func(t *testing.T) {
		a1, b1 := pods[0], pods[2]
		gw := netip.MustParseAddr("10.92.0.1")
		for _, via := range []netip.Addr{mp1, gw} {
			out, err := inPod(a1.pod, "ip", "route", "replace", b1.ip.String()+"/32", "via", via.String())
			require.NoError(t, err, string(out))
			require.Empty(t, cannotReach(a1.pod, b1.ip), "a1 (gw-1) → b1 (gw-2) routed via %s", via)
			got, _ := udpName(a1.pod, b1.ip, 1200*time.Millisecond)
			require.Empty(t, got, "UDP a1 → b1 via %s", via)
		}
		// One way: b1 must not even receive what a1 sends through the node, and it is
		// the node's guard (table sdncni) that stops it: without the table it arrives.
		out, err := inPod(a1.pod, "ip", "route", "replace", b1.ip.String()+"/32", "via", mp1.String())
		require.NoError(t, err, string(out))
		arrived := udpSink(t, b1.pod, 7003)
		send := func() {
			for range 5 {
				c, err := dialFrom(a1.pod, "udp4", netip.AddrPortFrom(b1.ip, 7003).String(), time.Second)
				require.NoError(t, err)
				_, _ = c.Write([]byte("x"))
				c.Close()
				time.Sleep(50 * time.Millisecond)
			}
			time.Sleep(500 * time.Millisecond)
		}
		send()
		require.Zero(t, arrived(), "a1 → b1 through the node with the guard in place")
		inNetNS(t, o.NetNSPath, gateway.DeleteNetfilter)
		send()
		got := arrived()
		inNetNS(t, o.NetNSPath, func() error { return gateway.EnsureNetfilter(gateway.Filter{}) })
		require.NotZero(t, got, "control: without table sdncni the node would forward a1 → b1")
		send()
		require.Equal(t, got, arrived(), "guard restored")
		out, err = inPod(a1.pod, "ip", "route", "del", b1.ip.String()+"/32")
		require.NoError(t, err, string(out))
		// Same VPN still fine.
		name, err := banner(a1.pod, pods[1].ip, 5*time.Second)
		require.NoError(t, err)
		require.Equal(t, "a2", name)
	})

	t.Run("egress", func(t *testing.T) {
		srv := outside(t, o)
		for _, p := range pods {
			start := time.Now()
			var got string
			var err error
			require.Eventually(t, func() bool {
				got, err = whoAmIOutside(p.pod, srv, time.Second)
				return err == nil
			}, 20*time.Second, 200*time.Millisecond, "%s → outside: %v", p.name, err)
			require.Equal(t, "198.18.0.1", got, "%s (%s) leaves with the node's address", p.name, p.ip)
			t.Logf("%s (%s) → outside as %s, first answer after %v", p.name, p.ip, got, time.Since(start).Round(time.Millisecond))
		}
	})

	t.Run("deleting a VPN removes its management port", func(t *testing.T) {
		for _, p := range pods[2:] {
			require.NoError(t, n.del(t, "1.1.0", p.pod))
		}
		require.NoError(t, api.Client.Delete(context.Background(), &v1alpha1.VirtualPrivateNetwork{
			ObjectMeta: metav1.ObjectMeta{Name: "gw-2"}}))
		port := gateway.NamesFor("gw-2", o.SystemID).Port
		require.Eventually(t, func() bool {
			var v v1alpha1.VirtualPrivateNetwork
			gone := api.Client.Get(context.Background(), client.ObjectKey{Name: "gw-2"}, &v) != nil
			return gone && !strings.Contains(o.Vsctl(t, "list-ports", o.Bridge), port) && !mgmtIP(t, o, "gw-2").IsValid()
		}, 30*time.Second, 200*time.Millisecond, "gw-2's management port is removed")
		require.True(t, mgmtIP(t, o, "gw-1").IsValid(), "gw-1 keeps its port")
		got, err := nodeBanner(o.NetNSPath, pods[0].ip, 5*time.Second)
		require.NoError(t, err)
		require.Equal(t, "a1", got)
	})
}

// udpSink counts the datagrams p receives on port; the returned func reads the count.
func udpSink(t *testing.T, p *pod, port int) func() int64 {
	t.Helper()
	_, pc := listenIn(t, p, "udp4", fmt.Sprintf(":%d", port))
	t.Cleanup(func() { pc.Close() })
	var n atomic.Int64
	go func() {
		buf := make([]byte, 64)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
			n.Add(1)
		}
	}()
	return n.Load
}

// inNetNS runs f in the netns at path.
func inNetNS(t *testing.T, path string, f func() error) {
	t.Helper()
	nns, err := ns.GetNS(path)
	require.NoError(t, err)
	defer nns.Close()
	require.NoError(t, nns.Do(func(ns.NetNS) error { return f() }))
}

// TestGatewayTwoNodesSameAddress: two nodes, two VPNs with the same CIDR, one pod of each
// on its own node — both get the same address. Each node reaches its pod, each pod
// reaches its node's "outside" and leaves with its node's address; after every
// controller restarts the same holds and each node still has one management port.
func TestGatewayTwoNodesSameAddress(t *testing.T) {
	api := testenv.StartAPIServer(t)
	createNamespaces(t, api, "sdncni-system", "gw-c", "gw-d")
	c := testenv.StartCluster(t, 2)
	nodes := []*node{
		startVPNController(t, c.Nodes[0], api, "10.87.0.0/16"),
		startVPNController(t, c.Nodes[1], api, "10.87.0.0/16"),
	}
	createVPN(t, api, "gw-3", "10.93.0.0/24", "gw-c")
	createVPN(t, api, "gw-4", "10.93.0.0/24", "gw-d")
	waitVPN(t, api, "gw-3", ready)
	waitVPN(t, api, "gw-4", ready)

	pods := []*tpod{{pod: newPodIn(t, "c1", "gw-c"), vpn: "gw-3"}, {pod: newPodIn(t, "d1", "gw-d"), vpn: "gw-4"}}
	for i, p := range pods {
		p.ip = nodes[i].mustAdd(t, "1.1.0", p.pod)
		serveBanner(t, p.pod)
		t.Cleanup(func() { _ = nodes[i].del(t, "1.1.0", p.pod) })
		t.Logf("%s: %s in %s on %s", p.name, p.ip, p.vpn, c.Nodes[i].SystemID)
	}
	require.Equal(t, pods[0].ip, pods[1].ip, "different nodes may hold the same block of two VPNs")
	servers := []string{outside(t, c.Nodes[0]), outside(t, c.Nodes[1])}

	check := func(t *testing.T) {
		for i, p := range pods {
			o := c.Nodes[i]
			var got string
			require.Eventually(t, func() bool {
				got, _ = nodeBanner(o.NetNSPath, p.ip, time.Second)
				return got == p.name
			}, 20*time.Second, 100*time.Millisecond, "node %s → %s: got %q", o.SystemID, p.ip, got)
			var err error
			require.Eventually(t, func() bool {
				got, err = whoAmIOutside(p.pod, servers[i], time.Second)
				return err == nil
			}, 20*time.Second, 200*time.Millisecond, "%s → outside: %v", p.name, err)
			require.Equal(t, "198.18.0.1", got)
			var mps []string
			for _, port := range strings.Fields(o.Vsctl(t, "list-ports", o.Bridge)) {
				if strings.HasPrefix(port, gateway.PortPrefix) {
					mps = append(mps, port)
				}
			}
			// Its VPN's, and the default VPN's, which every node has (it reaches the
			// default VPN's pods on all nodes).
			require.ElementsMatch(t, []string{gateway.NamesFor(p.vpn, o.SystemID).Port,
				gateway.NamesFor(v1alpha1.DefaultVPNName, o.SystemID).Port}, mps, "management ports on %s", o.SystemID)
		}
	}
	t.Run("initial", check)
	for _, n := range nodes {
		n.restartController(n.extra...)
	}
	t.Run("after restart", check)
}

// TestGatewayNodeReachesDefaultVPNEverywhere: a node reaches the default VPN's pods on
// every node (the upstream node-pod conformance checks dial from one node's host network
// to pods on all nodes), through its own management port and OVN's tunnel; a tenant
// VPN's pod on another node it does not reach.
func TestGatewayNodeReachesDefaultVPNEverywhere(t *testing.T) {
	api := testenv.StartAPIServer(t)
	createNamespaces(t, api, "sdncni-system", "gw-def", "gw-ten")
	c := testenv.StartCluster(t, 2)
	nodes := []*node{
		startVPNController(t, c.Nodes[0], api, "10.88.0.0/16"),
		startVPNController(t, c.Nodes[1], api, "10.88.0.0/16"),
	}
	createVPN(t, api, "gw-5", "10.94.0.0/24", "gw-ten")
	waitVPN(t, api, "gw-5", ready)

	def := &tpod{pod: newPodIn(t, "def1", "gw-def"), vpn: v1alpha1.DefaultVPNName}
	ten := &tpod{pod: newPodIn(t, "ten1", "gw-ten"), vpn: "gw-5"}
	for _, p := range []*tpod{def, ten} {
		p.ip = nodes[0].mustAdd(t, "1.1.0", p.pod)
		serveBanner(t, p.pod)
		t.Cleanup(func() { _ = nodes[0].del(t, "1.1.0", p.pod) })
	}
	for _, o := range c.Nodes {
		var got string
		require.Eventually(t, func() bool {
			got, _ = nodeBanner(o.NetNSPath, def.ip, time.Second)
			return got == def.name
		}, 30*time.Second, 200*time.Millisecond, "node %s → default-VPN pod %s on %s: got %q",
			o.SystemID, def.ip, c.Nodes[0].SystemID, got)
	}
	_, err := nodeBanner(c.Nodes[1].NetNSPath, ten.ip, 2*time.Second)
	require.Error(t, err, "node %s reached tenant pod %s on another node", c.Nodes[1].SystemID, ten.ip)
}
