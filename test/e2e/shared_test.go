package e2e

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
	"github.com/sdncni/sdncni/internal/testenv"
	"github.com/sdncni/sdncni/pkg/ovs"
)

// twoPortService is a ClusterIP Service with the banner's TCP port and the name
// server's UDP port; its EndpointSlice is endpointSlice(ns, name, …).
func twoPortService(ns, name string) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Ports: []corev1.ServicePort{
			{Name: "tcp", Protocol: corev1.ProtocolTCP, Port: bannerPort, TargetPort: intstr.FromInt32(bannerPort)},
			{Name: "udp", Protocol: corev1.ProtocolUDP, Port: udpPort, TargetPort: intstr.FromInt32(udpPort)},
		}}}
}

// snatFlows lists, in the node netns at path, the conntrack entries of connections to
// vip: "original src → endpoint, reply to X", X being the address the endpoint saw.
func snatFlows(t *testing.T, path string, vip netip.Addr) []string {
	t.Helper()
	var out []string
	inNetNS(t, path, func() error {
		flows, err := netlink.ConntrackTableList(netlink.ConntrackTable, unix.AF_INET)
		if err != nil {
			return err
		}
		for _, f := range flows {
			if f.Forward.DstIP.Equal(vip.AsSlice()) {
				out = append(out, fmt.Sprintf("%s → %s, endpoint %s replies to %s, mark %#x",
					f.Forward.SrcIP, f.Forward.DstIP, f.Reverse.SrcIP, f.Reverse.DstIP, f.Mark))
			}
		}
		return nil
	})
	return out
}

// ask sends one query on c (a connected UDP socket) and returns the answer, "" if none
// came within a second.
func ask(c net.Conn) string {
	buf := make([]byte, 64)
	for range 4 {
		if _, err := c.Write([]byte("who")); err != nil {
			return ""
		}
		_ = c.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
		if n, err := c.Read(buf); err == nil {
			return string(buf[:n])
		}
	}
	return ""
}

// TestSharedServices: two nodes (strict rp_filter, a default route), a real API server,
// three VPNs on overlapping CIDRs —
// the default VPN 10.97.0.0/16 (namespaces kube-system and infra), VPN-1 10.97.0.0/24
// (sh-a) and VPN-2 10.97.0.0/24 (sh-b). The cluster DNS Service kube-system/kube-dns
// (UDP like DNS, and TCP) has one endpoint on each node; VPN-1 lists its Service sh-a/api
// in spec.sharedServices; infra/private is not shared.
//
//   - Pods of all three VPNs, and the nodes themselves (host-network pods), reach
//     kube-dns by ClusterIP, UDP and TCP, and both endpoints
//     (the local and the remote one) answer; the endpoint sees the address of its VPN's
//     management port on the client's node (conntrack shows the SNAT), never the
//     client's address, which may be an address of its own VPN.
//   - Path: the default VPN's pods through its OVN load balancer; the other VPNs' pods
//     through OVS, their VPN router, the node (DNAT, policy routing, SNAT) and the
//     default VPN's management port; the node's datapath counters show the client's
//     packets handed to OVS and the answers coming from it.
//   - infra/private is reachable from the default VPN only; sh-a/api from every VPN until
//     VPN-1 stops listing it.
//   - An endpoint that stops being ready stops getting queries from other VPNs, also from
//     a socket whose earlier queries conntrack had pinned to it.
//   - The cross-VPN truth table over all nine pods holds with all of this in place, and
//     after both controllers restart (shared Services keep answering throughout).
func TestSharedServices(t *testing.T) {
	api := testenv.StartAPIServer(t)
	createNamespaces(t, api, "sdncni-system", "kube-system", "infra", "sh-a", "sh-b")
	c := testenv.StartCluster(t, 2)
	// Nodes as on RHEL-family hosts: strict reverse-path filtering for every interface,
	// and a default route (towards an underlay address nobody holds). Shared replies come
	// from endpoint addresses the main table routes elsewhere; the management ports must
	// still accept them. The default route also gives the nodes' own sockets a route to
	// ClusterIPs (host-network pods).
	for _, o := range c.Nodes {
		out, err := exec.Command("nsenter", "--net="+o.NetNSPath, "sh", "-c",
			"echo 1 > /proc/sys/net/ipv4/conf/all/rp_filter && ip route replace default via 100.64.0.254").CombinedOutput()
		require.NoError(t, err, string(out))
	}
	nodes := []*node{
		startVPNController(t, c.Nodes[0], api, "10.97.0.0/16", "--metrics-addr", metricsAddr),
		startVPNController(t, c.Nodes[1], api, "10.97.0.0/16", "--metrics-addr", metricsAddr),
	}
	createVPN(t, api, "sh-1", "10.97.0.0/24", "sh-a")
	createVPN(t, api, "sh-2", "10.97.0.0/24", "sh-b")
	waitVPN(t, api, "sh-1", ready)
	waitVPN(t, api, "sh-2", ready)
	waitVPN(t, api, v1alpha1.DefaultVPNName, ready)

	var pods []*tpod
	by := map[string]*tpod{}
	add := func(name, ns, vpn string, n *node) *tpod {
		p := &tpod{pod: newPodIn(t, name, ns), vpn: vpn}
		p.ip = n.mustAdd(t, "1.1.0", p.pod)
		serveBanner(t, p.pod)
		serveUDPName(t, p.pod)
		t.Cleanup(func() { _ = n.del(t, "1.1.0", p.pod) })
		pods = append(pods, p)
		by[name] = p
		return p
	}
	add("dns-1", "kube-system", "default", nodes[0])
	add("dns-2", "kube-system", "default", nodes[1])
	add("priv-1", "infra", "default", nodes[0])
	c0 := add("c0", "infra", "default", nodes[1])
	add("api-1", "sh-a", "sh-1", nodes[1])
	c1 := add("c1", "sh-a", "sh-1", nodes[0])
	add("c1b", "sh-a", "sh-1", nodes[1])
	c2 := add("c2", "sh-b", "sh-2", nodes[1])
	add("c2b", "sh-b", "sh-2", nodes[0])
	for _, p := range pods {
		t.Logf("%s: %s in %s", p.name, p.ip, p.vpn)
	}

	ctx := context.Background()
	svcIP := func(s *corev1.Service) netip.Addr { return netip.MustParseAddr(s.Spec.ClusterIP) }
	dns := twoPortService("kube-system", "kube-dns")
	private := twoPortService("infra", "private")
	shared := twoPortService("sh-a", "api")
	for _, s := range []*corev1.Service{dns, private, shared} {
		require.NoError(t, api.Client.Create(ctx, s))
	}
	dnsSlice := endpointSlice("kube-system", "kube-dns", map[string]netip.Addr{"dns-1": by["dns-1"].ip, "dns-2": by["dns-2"].ip})
	require.NoError(t, api.Client.Create(ctx, dnsSlice))
	require.NoError(t, api.Client.Create(ctx, endpointSlice("infra", "private", map[string]netip.Addr{"priv-1": by["priv-1"].ip})))
	require.NoError(t, api.Client.Create(ctx, endpointSlice("sh-a", "api", map[string]netip.Addr{"api-1": by["api-1"].ip})))
	var v1 v1alpha1.VirtualPrivateNetwork
	require.NoError(t, api.Client.Get(ctx, client.ObjectKey{Name: "sh-1"}, &v1))
	v1.Spec.SharedServices = []string{"sh-a/api", "sh-b/not-mine"} // the second is not VPN-1's: ignored
	require.NoError(t, api.Client.Update(ctx, &v1))
	t.Logf("ClusterIPs: kube-dns %s, private %s, api %s", dns.Spec.ClusterIP, private.Spec.ClusterIP, shared.Spec.ClusterIP)

	// Every node holds a block of the default VPN now (it shares kube-dns), so each has a
	// management port there.
	for _, n := range nodes {
		require.Eventually(t, func() bool { return mgmtIP(t, n.ovn, v1alpha1.DefaultVPNName).IsValid() },
			30*time.Second, 100*time.Millisecond, "management port of the default VPN on %s", n.ovn.SystemID)
	}
	// The default VPN's own pods use its OVN load balancer; no other switch has it.
	lb := strings.TrimSpace(c.Nodes[0].Nbctl(t, "--bare", "--columns=_uuid", "find", "Load_Balancer",
		"name="+ovs.LoadBalancerName("kube-system", "kube-dns", "udp")))
	require.NotEmpty(t, lb)
	require.Contains(t, c.Nodes[0].Nbctl(t, "ls-lb-list", ovs.SwitchName(v1alpha1.DefaultVPNName)), lb)
	for _, v := range []string{"sh-1", "sh-2"} {
		require.NotContains(t, c.Nodes[0].Nbctl(t, "ls-lb-list", ovs.SwitchName(v)), lb)
	}

	// Wait until every client gets an answer from the DNS ClusterIP (flows installed).
	for _, p := range []*tpod{c0, c1, c2} {
		require.Eventually(t, func() bool {
			got, _ := udpName(p.pod, svcIP(dns), time.Second)
			return got != ""
		}, 30*time.Second, 200*time.Millisecond, "%s (%s) reaches kube-dns", p.name, p.vpn)
	}

	t.Run("dns from every vpn", func(t *testing.T) {
		const n = 24
		for _, p := range []*tpod{c0, c1, c2} {
			var before map[string]int64
			home := nodes[1]
			if p == c1 {
				home = nodes[0]
			}
			before = home.datapathCounters(t)
			tcp, udp := spread(t, p.pod, svcIP(dns), n)
			after := home.datapathCounters(t)
			t.Logf("%s (%s): TCP %v, UDP %v; redirect_fast +%d, to_ovs_* +%d", p.name, p.vpn, tcp, udp,
				after["redirect_fast"]-before["redirect_fast"],
				after["to_ovs_cross_vpn_or_unknown_dst"]-before["to_ovs_cross_vpn_or_unknown_dst"]+
					after["to_ovs_fastpath_off"]-before["to_ovs_fastpath_off"])
			for _, m := range []map[string]int{tcp, udp} {
				require.Positive(t, m["dns-1"], "%s: dns-1 answers", p.name)
				require.Positive(t, m["dns-2"], "%s: dns-2 answers", p.name)
				require.Equal(t, n, m["dns-1"]+m["dns-2"])
			}
			// The client's packets to the ClusterIP (no pod of its VPN) are handed to OVS —
			// at least one per UDP query and three per TCP connection — and the answers
			// come back from OVS (from its management port or OVN's load balancer).
			require.GreaterOrEqual(t, after["to_ovs_cross_vpn_or_unknown_dst"]-before["to_ovs_cross_vpn_or_unknown_dst"],
				int64(4*n), "%s: its packets to the ClusterIP pass OVS", p.name)
			require.GreaterOrEqual(t, after["from_ovs"]-before["from_ovs"], int64(3*n), "%s: answers arrive from OVS", p.name)
		}
		// On c1's node the endpoint saw the default VPN's management address of that
		// node, and the connection carries the default VPN's shared mark.
		mp := mgmtIP(t, nodes[0].ovn, v1alpha1.DefaultVPNName)
		flows := snatFlows(t, nodes[0].ovn.NetNSPath, svcIP(dns))
		t.Logf("conntrack on %s (default VPN's management address %s): %d entries, e.g.\n  %s", nodes[0].ovn.SystemID, mp,
			len(flows), strings.Join(flows[:min(3, len(flows))], "\n  "))
		require.True(t, slices.ContainsFunc(flows, func(f string) bool {
			return strings.HasPrefix(f, c1.ip.String()+" ") && strings.Contains(f, "replies to "+mp.String()+",")
		}), "c1's connections are SNATed to %s", mp)
	})

	t.Run("dns from the nodes", func(t *testing.T) {
		// Host-network pods and the node itself (output hook): both endpoints answer. (A
		// socket needs a route to the ClusterIP before the DNAT: the default route above.)
		for _, n := range nodes {
			seen := map[string]int{}
			for range 16 {
				name, err := nodeUDPName(n.ovn.NetNSPath, svcIP(dns), 2*time.Second)
				require.NoError(t, err)
				seen[name]++
				got, err := nodeBanner(n.ovn.NetNSPath, svcIP(dns), 5*time.Second)
				require.NoError(t, err)
				seen[got]++
			}
			t.Logf("from %s's netns: %v", n.ovn.SystemID, seen)
			require.Positive(t, seen["dns-1"], "dns-1 answers the node")
			require.Positive(t, seen["dns-2"], "dns-2 answers the node")
			require.Equal(t, 32, seen["dns-1"]+seen["dns-2"])
		}
	})

	t.Run("private stays private", func(t *testing.T) {
		got, err := banner(c0.pod, svcIP(private), 5*time.Second)
		require.NoError(t, err)
		require.Equal(t, "priv-1", got, "the default VPN reaches its own Service")
		for _, p := range []*tpod{c1, c2} {
			require.Empty(t, cannotReach(p.pod, svcIP(private)), "%s (%s) must not reach infra/private", p.name, p.vpn)
			got, _ := udpName(p.pod, svcIP(private), 1200*time.Millisecond)
			require.Empty(t, got, "%s: UDP to infra/private answered", p.name)
		}
	})

	t.Run("shared by vpn-1", func(t *testing.T) {
		for _, p := range []*tpod{c0, c1, c2} {
			require.Eventually(t, func() bool {
				got, _ := banner(p.pod, svcIP(shared), 2*time.Second)
				return got == "api-1"
			}, 20*time.Second, 200*time.Millisecond, "%s (%s) reaches sh-a/api", p.name, p.vpn)
			got, err := udpName(p.pod, svcIP(shared), 3*time.Second)
			require.NoError(t, err)
			require.Equal(t, "api-1", got)
		}
		// VPN-1 stops sharing it: VPN-2 and the default VPN lose it, VPN-1 keeps it.
		require.NoError(t, api.Client.Get(ctx, client.ObjectKey{Name: "sh-1"}, &v1))
		v1.Spec.SharedServices = nil
		require.NoError(t, api.Client.Update(ctx, &v1))
		for _, p := range []*tpod{c0, c2} {
			require.Eventually(t, func() bool { return cannotReach(p.pod, svcIP(shared)) == "" },
				20*time.Second, 200*time.Millisecond, "%s (%s) loses sh-a/api", p.name, p.vpn)
		}
		got, err := banner(c1.pod, svcIP(shared), 5*time.Second)
		require.NoError(t, err)
		require.Equal(t, "api-1", got)
	})

	t.Run("endpoint not ready", func(t *testing.T) {
		// A resolver that keeps its socket (one source port) whose queries conntrack
		// pinned to dns-2: once dns-2 is not ready the same socket must get dns-1, which
		// only happens if the node deleted the pinned conntrack entry.
		var sticky net.Conn
		require.Eventually(t, func() bool {
			c, err := dialFrom(c2.pod, "udp4", netip.AddrPortFrom(svcIP(dns), udpPort).String(), time.Second)
			if err != nil {
				return false
			}
			if ask(c) == "dns-2" {
				sticky = c
				return true
			}
			c.Close()
			return false
		}, 20*time.Second, 10*time.Millisecond, "a socket of c2 answered by dns-2")
		defer sticky.Close()
		require.Equal(t, "dns-2", ask(sticky), "conntrack keeps the socket on dns-2")
		require.NoError(t, api.Client.Get(ctx, client.ObjectKeyFromObject(dnsSlice), dnsSlice))
		fresh := endpointSlice("kube-system", "kube-dns",
			map[string]netip.Addr{"dns-1": by["dns-1"].ip, "dns-2": by["dns-2"].ip}, "dns-2")
		dnsSlice.Endpoints = fresh.Endpoints
		require.NoError(t, api.Client.Update(ctx, dnsSlice))
		for _, p := range []*tpod{c1, c2} {
			require.Eventually(t, func() bool {
				// While the change lands, a connection DNATed to dns-2 just before may lose
				// its conntrack entry to the cleanup of gone endpoints (on purpose: see the
				// pinned socket below) and time out; that is "not drained yet", not a failure.
				for range 8 {
					got, err := banner(p.pod, svcIP(dns), 5*time.Second)
					name, uerr := udpName(p.pod, svcIP(dns), 3*time.Second)
					if err != nil || uerr != nil || got == "dns-2" || name == "dns-2" {
						return false
					}
				}
				return true
			}, 30*time.Second, 500*time.Millisecond, "%s: dns-2 drained", p.name)
		}
		require.Equal(t, "dns-1", ask(sticky), "the pinned socket moved to dns-1 (its conntrack entry was deleted)")
		dnsSlice.Endpoints = endpointSlice("kube-system", "kube-dns",
			map[string]netip.Addr{"dns-1": by["dns-1"].ip, "dns-2": by["dns-2"].ip}).Endpoints
		require.NoError(t, api.Client.Update(ctx, dnsSlice))
		require.Eventually(t, func() bool {
			_, udp := spread(t, c2.pod, svcIP(dns), 8)
			return udp["dns-2"] > 0
		}, 20*time.Second, 500*time.Millisecond, "dns-2 back")
	})

	t.Run("truth table", func(t *testing.T) { truthTable(t, pods) })

	t.Run("after restart", func(t *testing.T) {
		for _, n := range nodes {
			n.restartController(n.extra...)
		}
		// A starting controller keeps the node's table (and so the shared Services) until
		// it has read the Services again: DNS answers right after the restart.
		for _, p := range []*tpod{c1, c2} {
			got, err := udpName(p.pod, svcIP(dns), 3*time.Second)
			require.NoError(t, err)
			require.NotEmpty(t, got, "%s: DNS across the restart", p.name)
		}
		truthTable(t, pods)
	})
}
