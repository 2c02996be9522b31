package netpol

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	cnpv1 "sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/sdncni/sdncni/internal/testenv"
	"github.com/sdncni/sdncni/pkg/ovs"
	"github.com/sdncni/sdncni/pkg/policy"
	"github.com/sdncni/sdncni/pkg/policy/policytest"
)

// pairSnapshot is the layout of policytest: xyz with ports "serve-80" (TCP 80, 81, 82 by
// pod), "dns" (UDP 5300 + the pod's index) and "mixed" (TCP 9000 or UDP 9001).
func pairSnapshot(vpn string) *policy.Snapshot {
	s := xyzSnapshot(vpn)
	for i := range s.Pods {
		p := &s.Pods[i]
		p.Ports = []policy.NamedPort{{Name: "serve-80", Protocol: corev1.ProtocolTCP, Port: p.Ports[0].Port},
			{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 5300 + int32(i)}}
		if i%2 == 0 {
			p.Ports = append(p.Ports, policy.NamedPort{Name: "mixed", Protocol: corev1.ProtocolTCP, Port: 9000})
		} else {
			p.Ports = append(p.Ports, policy.NamedPort{Name: "mixed", Protocol: corev1.ProtocolUDP, Port: 9001})
		}
	}
	return s
}

// xyzSnapshot is the upstream layout (namespaces x, y, z; pods a, b, c), each pod naming
// port "serve" with its own number (80, 81, 82).
func xyzSnapshot(vpn string) *policy.Snapshot {
	s := &policy.Snapshot{VPN: vpn, NodeAddrs: []netip.Addr{netip.MustParseAddr("10.0.9.1")}}
	for i, ns := range []string{"x", "y", "z"} {
		s.Namespaces = append(s.Namespaces, policy.Namespace{Name: ns, Labels: map[string]string{"ns": ns}})
		for j, pod := range []string{"a", "b", "c"} {
			s.Pods = append(s.Pods, policy.Pod{Namespace: ns, Name: pod, Labels: map[string]string{"pod": pod},
				IP:    netip.AddrFrom4([4]byte{10, 0, byte(i), byte(10 + j)}),
				Ports: []policy.NamedPort{{Name: "serve", Protocol: corev1.ProtocolTCP, Port: 80 + int32(j)}}})
		}
	}
	return s
}

func podMAC(a netip.Addr) net.HardwareAddr {
	b := a.As4()
	return net.HardwareAddr{0x0a, 0x58, b[0], b[1], b[2], b[3]}
}

func lspName(p policy.Pod) string { return "t-" + p.Namespace + "-" + p.Name }

func labelSel(k, v string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{k: v}}
}

func cnpOf(name string, tier cnpv1.Tier, prio int32, subjectNS string, in []cnpv1.ClusterNetworkPolicyIngressRule, eg []cnpv1.ClusterNetworkPolicyEgressRule) cnpv1.ClusterNetworkPolicy {
	return cnpv1.ClusterNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: cnpv1.ClusterNetworkPolicySpec{
		Tier: tier, Priority: prio, Subject: cnpv1.ClusterNetworkPolicySubject{Namespaces: labelSel("ns", subjectNS)},
		Ingress: in, Egress: eg}}
}

func from(a cnpv1.ClusterNetworkPolicyRuleAction, ns string, protos ...cnpv1.ClusterNetworkPolicyProtocol) cnpv1.ClusterNetworkPolicyIngressRule {
	return cnpv1.ClusterNetworkPolicyIngressRule{Action: a, From: []cnpv1.ClusterNetworkPolicyIngressPeer{{Namespaces: labelSel("ns", ns)}}, Protocols: protos}
}

func to(a cnpv1.ClusterNetworkPolicyRuleAction, ns string, protos ...cnpv1.ClusterNetworkPolicyProtocol) cnpv1.ClusterNetworkPolicyEgressRule {
	return cnpv1.ClusterNetworkPolicyEgressRule{Action: a, To: []cnpv1.ClusterNetworkPolicyEgressPeer{{Namespaces: labelSel("ns", ns)}}, Protocols: protos}
}

func tcpDst(n int32) cnpv1.ClusterNetworkPolicyProtocol {
	return cnpv1.ClusterNetworkPolicyProtocol{TCP: &cnpv1.ClusterNetworkPolicyProtocolTCP{DestinationPort: &cnpv1.Port{Number: n}}}
}

// TestTiersInOVN: the ACLs Compile makes for ClusterNetworkPolicies of both tiers with
// NetworkPolicies, written by SetPolicyRules into a real OVN Northbound and turned into
// logical flows by a real ovn-northd, give every new packet between the pods the
// verdict of policy.Allowed — asked of ovn-trace for every ordered pair of pods, TCP to
// each pod's named port and to a port nothing names, UDP and ICMP; and for eight random
// scenarios drawn by policytest. It is what shows the Pass emulation holds in an ACL
// table with a single winner per packet (OVN 23.03).
func TestTiersInOVN(t *testing.T) {
	c := testenv.StartCentral(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	n, err := ovs.NewNorthbound(ctx, c.NBDB, logr.Discard())
	require.NoError(t, err)
	t.Cleanup(n.Close)
	const vpn = "cnpt"
	require.NoError(t, n.EnsureNetwork(ctx, ovs.Network{Name: vpn,
		Subnets:    []netip.Prefix{netip.MustParsePrefix("10.0.0.0/16")},
		GatewayMAC: net.HardwareAddr{0x0a, 0x58, 0, 0, 0, 1}, Gateways: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/16")}}))
	base := xyzSnapshot(vpn)
	for _, p := range base.Pods {
		require.NoError(t, n.AddLogicalPort(ctx, vpn, ovs.LogicalPort{Name: lspName(p), MAC: podMAC(p.IP), IPs: []netip.Addr{p.IP},
			Owner: ovs.Owner{PodNamespace: p.Namespace, PodName: p.Name}}))
	}

	admin, baseline := cnpv1.AdminTier, cnpv1.BaselineTier
	accept, deny, pass := cnpv1.ClusterNetworkPolicyRuleActionAccept, cnpv1.ClusterNetworkPolicyRuleActionDeny, cnpv1.ClusterNetworkPolicyRuleActionPass
	udp := corev1.ProtocolUDP
	npAllowFrom := func(ns, fromNS string, ports ...networkingv1.NetworkPolicyPort) networkingv1.NetworkPolicy {
		return networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "from-" + fromNS}, Spec: networkingv1.NetworkPolicySpec{
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: labelSel("ns", fromNS)}}, Ports: ports}}}}
	}
	npEgressTo := func(ns, toNS string) networkingv1.NetworkPolicy {
		return networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "to-" + toNS}, Spec: networkingv1.NetworkPolicySpec{
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
			Egress:      []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: labelSel("ns", toNS)}}}}}}
	}
	udpPort := intstr.FromInt32(5353)
	scenarios := []struct {
		name string
		nps  []networkingv1.NetworkPolicy
		cnps []cnpv1.ClusterNetworkPolicy
	}{
		{name: "admin accept over NetworkPolicy isolation, admin deny over its allow",
			nps: []networkingv1.NetworkPolicy{npAllowFrom("x", "z"), npEgressTo("x", "z")},
			cnps: []cnpv1.ClusterNetworkPolicy{cnpOf("a", admin, 1, "x", []cnpv1.ClusterNetworkPolicyIngressRule{
				from(accept, "y", tcpDst(80)), from(deny, "z", tcpDst(81))}, nil)}},
		{name: "admin pass: NetworkPolicy then baseline decide, lower admin rules do not",
			nps: []networkingv1.NetworkPolicy{npAllowFrom("y", "x", networkingv1.NetworkPolicyPort{Protocol: &udp, Port: &udpPort})},
			cnps: []cnpv1.ClusterNetworkPolicy{
				cnpOf("pass", admin, 1, "y", []cnpv1.ClusterNetworkPolicyIngressRule{from(pass, "x"), from(pass, "z", tcpDst(80))}, nil),
				cnpOf("deny-all", admin, 2, "y", []cnpv1.ClusterNetworkPolicyIngressRule{from(deny, "x"), from(deny, "z")}, nil),
				cnpOf("pass-z", admin, 1, "z", []cnpv1.ClusterNetworkPolicyIngressRule{from(pass, "x")}, nil),
				cnpOf("deny-z", admin, 3, "z", []cnpv1.ClusterNetworkPolicyIngressRule{from(deny, "x"), from(deny, "y")}, nil),
				cnpOf("base-z", baseline, 1, "z", []cnpv1.ClusterNetworkPolicyIngressRule{
					from(deny, "x", tcpDst(81)), from(pass, "x", tcpDst(82)), from(deny, "x")}, nil)}},
		{name: "egress: admin pass to NetworkPolicy egress isolation, baseline deny, named port",
			nps: []networkingv1.NetworkPolicy{npEgressTo("x", "y")},
			cnps: []cnpv1.ClusterNetworkPolicy{
				cnpOf("eg-pass", admin, 5, "x", nil, []cnpv1.ClusterNetworkPolicyEgressRule{to(pass, "z", cnpv1.ClusterNetworkPolicyProtocol{DestinationNamedPort: "serve"}), to(deny, "z")}),
				cnpOf("eg-accept", admin, 6, "x", nil, []cnpv1.ClusterNetworkPolicyEgressRule{to(accept, "z", tcpDst(80))}),
				cnpOf("eg-base", baseline, 1, "y", nil, []cnpv1.ClusterNetworkPolicyEgressRule{to(deny, "z"), to(accept, "x")}),
				{ObjectMeta: metav1.ObjectMeta{Name: "eg-net"}, Spec: cnpv1.ClusterNetworkPolicySpec{Tier: admin, Priority: 7,
					Subject: cnpv1.ClusterNetworkPolicySubject{Namespaces: labelSel("ns", "z")},
					Egress: []cnpv1.ClusterNetworkPolicyEgressRule{{Action: deny, To: []cnpv1.ClusterNetworkPolicyEgressPeer{
						{Networks: []cnpv1.CIDR{"10.0.0.10/31"}}}}}}}}},
	}
	probes := []probe{{corev1.ProtocolTCP, 80}, {corev1.ProtocolTCP, 81}, {corev1.ProtocolTCP, 82}, {corev1.ProtocolTCP, 9000},
		{udp, 5353}, {"ICMP", 0}}
	traced := 0
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			s := xyzSnapshot(vpn)
			s.Policies, s.ClusterPolicies = sc.nps, sc.cnps
			require.Empty(t, policy.Resolve(s).Problems)
			k, allowed, denied := checkInOVN(ctx, t, c, n, s, probes)
			traced += k
			require.NotZero(t, allowed)
			require.NotZero(t, denied)
		})
	}
	// Random scenarios of both kinds of policy, drawn as pkg/policy's agreement test
	// draws them (unsupported peers and SCTP included: fail-closed rules must agree too).
	r := rand.New(rand.NewPCG(13, 3))
	random := []probe{{corev1.ProtocolTCP, 75}, {corev1.ProtocolTCP, 80}, {corev1.ProtocolTCP, 82}, {corev1.ProtocolTCP, 90},
		{corev1.ProtocolTCP, 9000}, {udp, 5302}, {udp, 9001}, {"ICMP", 0}}
	for k := range 8 {
		t.Run(fmt.Sprintf("random %d", k), func(t *testing.T) {
			s := pairSnapshot(vpn)
			for i := range r.IntN(3) {
				s.Policies = append(s.Policies, policytest.RandomPolicy(r, i))
			}
			for i := range 1 + r.IntN(4) {
				s.ClusterPolicies = append(s.ClusterPolicies, policytest.RandomClusterPolicy(r, i))
			}
			k, _, _ := checkInOVN(ctx, t, c, n, s, random)
			traced += k
		})
	}
	t.Logf("%d packets traced", traced)
	require.NoError(t, n.SetPolicyRules(ctx, vpn, nil, nil))
	// Every match we wrote parsed: ovn-northd warns about the flows it cannot build.
	northd := c.NorthdLog()
	require.Contains(t, northd, "|INFO|", "ovn-northd's log is where it should be")
	for _, line := range strings.Split(northd, "\n") {
		if strings.Contains(line, "|WARN|") || strings.Contains(line, "|ERR|") {
			t.Errorf("ovn-northd: %s", line)
		}
	}
}

type probe struct {
	proto corev1.Protocol
	port  int32
}

// checkInOVN writes what Compile makes of s into the VPN's switch and asks ovn-trace, for
// every ordered pair of s's pods and probe, whether OVN delivers a new packet exactly
// when policy.Allowed says, and whether it delivers the reply of each allowed TCP/80
// connection. It returns the numbers of packets traced, and of probes allowed and denied.
func checkInOVN(ctx context.Context, t *testing.T, c *testenv.Central, n *ovs.Northbound, s *policy.Snapshot, probes []probe) (traced, allowed, denied int) {
	t.Helper()
	ps := policy.Resolve(s)
	rules := ps.Compile()
	require.Empty(t, rules.Problems)
	sets, acls := toOVS(rules)
	require.NoError(t, n.SetPolicyRules(ctx, s.VPN, sets, acls))
	c.Nbctl(t, "--wait=sb", "sync")
	for _, src := range s.Pods {
		for _, dst := range s.Pods {
			if src.IP == dst.IP {
				continue
			}
			for _, pr := range probes {
				want := ps.Allowed(src.IP, dst.IP, pr.proto, pr.port)
				got := traceDelivers(ctx, t, c, s.VPN, src, dst, pr.proto, pr.port, false)
				traced++
				if got != want {
					t.Errorf("%s → %s %s/%d: OVN delivers=%v, Allowed=%v", src.Key(), dst.Key(), pr.proto, pr.port, got, want)
				}
				// The replies of an allowed connection pass, whatever isolates the
				// replying pod (an Admin Accept over NetworkPolicy isolation included).
				if want && pr.proto == corev1.ProtocolTCP && pr.port == 80 {
					traced++
					if !traceDelivers(ctx, t, c, s.VPN, dst, src, pr.proto, pr.port, true) {
						t.Errorf("%s → %s: the reply of an allowed TCP/80 connection is dropped", dst.Key(), src.Key())
					}
				}
				if want {
					allowed++
				} else {
					denied++
				}
			}
		}
	}
	t.Logf("%d ACLs; %d probes allowed, %d denied", len(acls), allowed, denied)
	return traced, allowed, denied
}

// traceDelivers asks ovn-trace whether a new packet (every conntrack lookup says new)
// from src to dst reaches dst's logical port; with reply, whether the reply of such a
// connection (conntrack says established, reply direction; the port is the source)
// does.
func traceDelivers(ctx context.Context, t *testing.T, c *testenv.Central, vpn string, src, dst policy.Pod, proto corev1.Protocol, port int32, reply bool) bool {
	t.Helper()
	sport, dport := int32(40000), port
	if reply {
		sport, dport = port, 40000
	}
	flow := fmt.Sprintf(`inport == %q && eth.src == %s && eth.dst == %s && ip4.src == %s && ip4.dst == %s && ip.ttl == 64`,
		lspName(src), podMAC(src.IP), podMAC(dst.IP), src.IP, dst.IP)
	switch proto {
	case corev1.ProtocolTCP:
		flow += fmt.Sprintf(" && tcp && tcp.src == %d && tcp.dst == %d", sport, dport)
	case corev1.ProtocolUDP:
		flow += fmt.Sprintf(" && udp && udp.src == %d && udp.dst == %d", sport, dport)
	default:
		flow += " && icmp4 && icmp4.type == 8 && icmp4.code == 0"
	}
	ct := "--ct=new"
	if reply {
		ct = "--ct=est,rpl"
	}
	args := []string{"--minimal"}
	for range 4 {
		args = append(args, ct)
	}
	out, err := c.Trace(ctx, append(args, ovs.SwitchName(vpn), flow)...)
	require.NoError(t, err)
	return strings.Contains(out, fmt.Sprintf("output(%q)", lspName(dst)))
}
