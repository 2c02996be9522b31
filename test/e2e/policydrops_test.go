package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/sdncni/sdncni/pkg/ovs"
	"github.com/sdncni/sdncni/pkg/policy"
)

// TestPolicyDropCounters: on real OVN (northd, ovn-controller) and ovs-vswitchd with the
// userspace datapath, a probe that a NetworkPolicy denies moves the controller's
// sdncni_policy_dropped_packets_total of its VPN and direction by exactly the packets
// sent, and nothing else; an allowed probe moves nothing. The VPNs' fast path is off
// here (no node role writes verdicts without the API), so every packet passes OVN's
// ACLs; the fast path never drops for policy anyway (docs/policy.md).
func TestPolicyDropCounters(t *testing.T) {
	nets := writeNetworksFile(t,
		testNetwork{Name: "red", ID: 2, CIDR: "10.78.0.0/24", MTU: 1400, Namespaces: []string{"ns-red"}},
		testNetwork{Name: "blue", ID: 3, CIDR: "10.79.0.0/24", MTU: 1400, Namespaces: []string{"ns-blue"}})
	n := newNode(t, withMetrics(), withControllerArgs("--networks-file", nets))

	type tpod struct {
		*pod
		ip netip.Addr
	}
	add := func(ns, name string) tpod {
		p := newPodIn(t, name, ns)
		ip := n.mustAdd(t, "1.1.0", p)
		serveUDPName(t, p)
		t.Cleanup(func() { _ = n.del(t, "1.1.0", p) })
		return tpod{p, ip}
	}
	a, b, c, d := add("ns-red", "a"), add("ns-red", "b"), add("ns-red", "c"), add("ns-red", "d")
	e, f := add("ns-blue", "e"), add("ns-blue", "f")
	for _, pair := range [][2]tpod{{a, b}, {c, a}, {d, b}, {e, f}} {
		waitPing(t, pair[0].pod, pair[1].ip, 20*time.Second)
	}

	// In red: b accepts UDP from a only; c may send nothing. Blue has no policy.
	udp := corev1.ProtocolUDP
	port := intstr.FromInt32(udpPort)
	pols := []networkingv1.NetworkPolicy{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "ns-red", Name: "b-from-a"},
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"pod": "b"}},
				Ingress: []networkingv1.NetworkPolicyIngressRule{{
					From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"pod": "a"}}}},
					Ports: []networkingv1.NetworkPolicyPort{{Protocol: &udp, Port: &port}},
				}},
			}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "ns-red", Name: "c-silent"},
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"pod": "c"}},
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
			}},
	}
	snap := &policy.Snapshot{VPN: "red", Namespaces: []policy.Namespace{{Name: "ns-red"}}, Policies: pols}
	for _, p := range []tpod{a, b, c, d} {
		snap.Pods = append(snap.Pods, policy.Pod{Namespace: "ns-red", Name: p.name, IP: p.ip,
			Labels: map[string]string{"pod": p.name}})
	}
	setPolicyRules(t, n, "red", policy.Resolve(snap).Compile())

	drops := func() map[string]int64 {
		t.Helper()
		return policyDrops(t, n)
	}
	// The counters appear once the controller's Southbound connection is up; every VPN
	// with a drop ACL has its series from the start.
	var before map[string]int64
	require.Eventually(t, func() bool {
		before = drops()
		_, in := before["red/ingress"]
		_, eg := before["red/egress"]
		return in && eg
	}, 20*time.Second, 200*time.Millisecond, "no policy drop series of red in /metrics:\n%s", n.scrapeMetrics(t))
	require.NotContains(t, before, "blue/ingress", "blue has no policy, so no drop ACL")

	// settle waits until the counters stop moving (OVS pushes datapath stats to its
	// flows within about a second) and returns them.
	settle := func() map[string]int64 {
		t.Helper()
		cur := drops()
		for i := 0; i < 20; i++ {
			time.Sleep(500 * time.Millisecond)
			next := drops()
			if fmt.Sprint(next) == fmt.Sprint(cur) && i >= 3 {
				return next
			}
			cur = next
		}
		return cur
	}
	before = settle()
	moved := func(want map[string]int64) {
		t.Helper()
		got := settle()
		for k := range got {
			require.Equal(t, want[k], got[k]-before[k], "%s moved by %d, want %d (before %v, after %v)",
				k, got[k]-before[k], want[k], before, got)
		}
		before = got
	}

	t.Run("allowed probes move nothing", func(t *testing.T) {
		name, err := udpName(a.pod, b.ip, 3*time.Second)
		require.NoError(t, err)
		require.Equal(t, "b", name, "a reaches b: the policy allows it")
		name, err = udpName(d.pod, a.ip, 3*time.Second)
		require.NoError(t, err)
		require.Equal(t, "a", name, "a is not isolated")
		name, err = udpName(e.pod, f.ip, 3*time.Second)
		require.NoError(t, err)
		require.Equal(t, "f", name, "blue has no policy")
		moved(nil)
	})
	t.Run("denied ingress counts on red/ingress", func(t *testing.T) {
		sendUDP(t, d.pod, b.ip, 5)
		moved(map[string]int64{"red/ingress": 5})
	})
	t.Run("denied egress counts on red/egress", func(t *testing.T) {
		sendUDP(t, c.pod, a.ip, 3)
		moved(map[string]int64{"red/egress": 3})
	})
	t.Run("a restarted controller keeps counting from the flows", func(t *testing.T) {
		n.restartController(n.extra...)
		require.Eventually(t, func() bool {
			got := drops()
			return got["red/ingress"] >= before["red/ingress"] && got["red/egress"] >= before["red/egress"]
		}, 20*time.Second, 200*time.Millisecond, "the flows' counts are read again after a restart")
		before = settle()
		sendUDP(t, d.pod, b.ip, 2)
		moved(map[string]int64{"red/ingress": 2})
	})
	t.Run("flows installed anew keep the totals", func(t *testing.T) {
		// Removing the rows and writing them again gives new ACLs, hence new logical
		// flows and OpenFlow flows counting from zero: the series must not go back.
		rules := policy.Resolve(snap).Compile()
		setPolicyRules(t, n, "red", policy.Rules{})
		moved(nil)
		setPolicyRules(t, n, "red", rules)
		moved(nil)
		sendUDP(t, d.pod, b.ip, 4)
		sendUDP(t, c.pod, a.ip, 1)
		moved(map[string]int64{"red/ingress": 4, "red/egress": 1})
	})
}

// sendUDP sends count datagrams from p to dst's udpPort and requires that none is
// answered (the server answers each one it gets).
func sendUDP(t *testing.T, p *pod, dst netip.Addr, count int) {
	t.Helper()
	conn, err := dialFrom(p, "udp4", netip.AddrPortFrom(dst, udpPort).String(), time.Second)
	require.NoError(t, err)
	defer conn.Close()
	for i := 0; i < count; i++ {
		_, err := conn.Write([]byte("drop me"))
		require.NoError(t, err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(1500 * time.Millisecond))
	buf := make([]byte, 64)
	n, err := conn.Read(buf)
	var ne net.Error
	require.True(t, errors.As(err, &ne) && ne.Timeout(), "%s reached %s (answer %q, %v): the policy must deny it",
		p.name, dst, buf[:n], err)
}

// setPolicyRules writes rules as network's policy rows in NB, as the cluster role does,
// and waits until the node's ovn-controller has installed them.
func setPolicyRules(t *testing.T, n *node, network string, rules policy.Rules) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nb, err := ovs.NewNorthbound(ctx, n.ovn.NBDB, logr.Discard())
	require.NoError(t, err)
	defer nb.Close()
	var sets []ovs.PolicyAddressSet
	for _, s := range rules.AddressSets {
		var addrs []string
		for _, a := range s.Addrs {
			addrs = append(addrs, a.String())
		}
		sets = append(sets, ovs.PolicyAddressSet{Name: s.Name, Addrs: addrs, Policy: s.Policy})
	}
	var acls []ovs.PolicyACL
	for _, a := range rules.ACLs {
		acls = append(acls, ovs.PolicyACL{Key: a.Key(), Direction: a.Direction, Priority: a.Priority,
			Match: a.Match, Action: a.Action, AfterLB: a.AfterLB, Policy: a.Policy})
	}
	require.NoError(t, nb.SetPolicyRules(ctx, network, sets, acls))
	n.ovn.Nbctl(t, "--wait=hv", "--timeout=30", "sync")
}

// policyDrops scrapes sdncni_policy_dropped_packets_total: "vpn/direction" → packets.
func policyDrops(t *testing.T, n *node) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	const prefix = `sdncni_policy_dropped_packets_total{`
	for _, line := range strings.Split(string(n.scrapeMetrics(t)), "\n") {
		rest, ok := strings.CutPrefix(line, prefix)
		if !ok {
			continue
		}
		labels, val, ok := strings.Cut(rest, "} ")
		require.True(t, ok, "metric line %q", line)
		var dir, vpn string
		for _, l := range strings.Split(labels, ",") {
			k, v, _ := strings.Cut(l, "=")
			switch k {
			case "direction":
				dir = strings.Trim(v, `"`)
			case "vpn":
				vpn = strings.Trim(v, `"`)
			}
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		require.NoError(t, err, "metric line %q", line)
		out[vpn+"/"+dir] = int64(v)
	}
	return out
}

// policyHandoffs scrapes sdncni_policy_to_ovs_packets_total: vpn → packets.
func policyHandoffs(t *testing.T, n *node) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	const prefix = `sdncni_policy_to_ovs_packets_total{vpn="`
	for _, line := range strings.Split(string(n.scrapeMetrics(t)), "\n") {
		rest, ok := strings.CutPrefix(line, prefix)
		if !ok {
			continue
		}
		vpn, val, ok := strings.Cut(rest, `"} `)
		require.True(t, ok, "metric line %q", line)
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		require.NoError(t, err, "metric line %q", line)
		out[vpn] = int64(v)
	}
	return out
}
