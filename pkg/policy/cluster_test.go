package policy

import (
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	cnpv1 "sigs.k8s.io/network-policy-api/apis/v1beta1"
)

const (
	accept = cnpv1.ClusterNetworkPolicyRuleActionAccept
	deny   = cnpv1.ClusterNetworkPolicyRuleActionDeny
	pass   = cnpv1.ClusterNetworkPolicyRuleActionPass
)

func cnp(name string, tier cnpv1.Tier, prio int32, subject cnpv1.ClusterNetworkPolicySubject,
	in []cnpv1.ClusterNetworkPolicyIngressRule, eg []cnpv1.ClusterNetworkPolicyEgressRule) cnpv1.ClusterNetworkPolicy {
	return cnpv1.ClusterNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: cnpv1.ClusterNetworkPolicySpec{Tier: tier, Priority: prio, Subject: subject, Ingress: in, Egress: eg}}
}

// nsSubject selects the pods of namespace ns; podSubject pod of namespace ns.
func nsSubject(ns string) cnpv1.ClusterNetworkPolicySubject {
	return cnpv1.ClusterNetworkPolicySubject{Namespaces: sel("ns", ns)}
}

func podSubject(ns, pod string) cnpv1.ClusterNetworkPolicySubject {
	return cnpv1.ClusterNetworkPolicySubject{Pods: &cnpv1.NamespacedPod{NamespaceSelector: *sel("ns", ns), PodSelector: *sel("pod", pod)}}
}

func fromNS(a cnpv1.ClusterNetworkPolicyRuleAction, ns string, protos ...cnpv1.ClusterNetworkPolicyProtocol) cnpv1.ClusterNetworkPolicyIngressRule {
	return cnpv1.ClusterNetworkPolicyIngressRule{Action: a, From: []cnpv1.ClusterNetworkPolicyIngressPeer{{Namespaces: sel("ns", ns)}}, Protocols: protos}
}

func fromPod(a cnpv1.ClusterNetworkPolicyRuleAction, ns, pod string, protos ...cnpv1.ClusterNetworkPolicyProtocol) cnpv1.ClusterNetworkPolicyIngressRule {
	return cnpv1.ClusterNetworkPolicyIngressRule{Action: a, From: []cnpv1.ClusterNetworkPolicyIngressPeer{{
		Pods: &cnpv1.NamespacedPod{NamespaceSelector: *sel("ns", ns), PodSelector: *sel("pod", pod)}}}, Protocols: protos}
}

func toNS(a cnpv1.ClusterNetworkPolicyRuleAction, ns string, protos ...cnpv1.ClusterNetworkPolicyProtocol) cnpv1.ClusterNetworkPolicyEgressRule {
	return cnpv1.ClusterNetworkPolicyEgressRule{Action: a, To: []cnpv1.ClusterNetworkPolicyEgressPeer{{Namespaces: sel("ns", ns)}}, Protocols: protos}
}

func toNet(a cnpv1.ClusterNetworkPolicyRuleAction, cidr string, protos ...cnpv1.ClusterNetworkPolicyProtocol) cnpv1.ClusterNetworkPolicyEgressRule {
	return cnpv1.ClusterNetworkPolicyEgressRule{Action: a, To: []cnpv1.ClusterNetworkPolicyEgressPeer{{Networks: []cnpv1.CIDR{cnpv1.CIDR(cidr)}}}, Protocols: protos}
}

func tcpPort(n int32) cnpv1.ClusterNetworkPolicyProtocol {
	return cnpv1.ClusterNetworkPolicyProtocol{TCP: &cnpv1.ClusterNetworkPolicyProtocolTCP{DestinationPort: &cnpv1.Port{Number: n}}}
}

func udpRange(lo, hi int32) cnpv1.ClusterNetworkPolicyProtocol {
	return cnpv1.ClusterNetworkPolicyProtocol{UDP: &cnpv1.ClusterNetworkPolicyProtocolUDP{DestinationPort: &cnpv1.Port{Range: &cnpv1.PortRange{Start: lo, End: hi}}}}
}

func namedPort(n string) cnpv1.ClusterNetworkPolicyProtocol {
	return cnpv1.ClusterNetworkPolicyProtocol{DestinationNamedPort: n}
}

func ingress(rs ...cnpv1.ClusterNetworkPolicyIngressRule) []cnpv1.ClusterNetworkPolicyIngressRule {
	return rs
}
func egress(rs ...cnpv1.ClusterNetworkPolicyEgressRule) []cnpv1.ClusterNetworkPolicyEgressRule {
	return rs
}

// denyAllIngressNP isolates every pod of ns for ingress.
func denyAllIngressNP(ns string) networkingv1.NetworkPolicy {
	return np(ns, "deny", networkingv1.NetworkPolicySpec{})
}

// allowFromNP lets pods of namespace from into every pod of ns.
func allowFromNP(ns, from string) networkingv1.NetworkPolicy {
	return np(ns, "from-"+from, networkingv1.NetworkPolicySpec{
		Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: sel("ns", from)}}}}})
}

type probe struct {
	src, dst string // pod key or address
	proto    corev1.Protocol
	port     int32
	allow    bool
}

func TestAllowedTiered(t *testing.T) {
	admin, baseline := cnpv1.AdminTier, cnpv1.BaselineTier
	cases := []struct {
		name   string
		nps    []networkingv1.NetworkPolicy
		cnps   []cnpv1.ClusterNetworkPolicy
		probes []probe
	}{
		{name: "admin deny by namespace, ingress",
			cnps: []cnpv1.ClusterNetworkPolicy{cnp("d", admin, 10, nsSubject("x"), ingress(fromNS(deny, "y")), nil)},
			probes: []probe{{"y/a", "x/b", tcp, 80, false}, {"y/a", "x/b", "ICMP", 0, false}, {"z/a", "x/b", tcp, 80, true},
				{"x/b", "y/a", tcp, 80, true}, {"10.0.9.1", "x/b", tcp, 80, true}}},
		{name: "admin deny overrides a NetworkPolicy allow",
			nps:    []networkingv1.NetworkPolicy{allowFromNP("x", "y")},
			cnps:   []cnpv1.ClusterNetworkPolicy{cnp("d", admin, 10, nsSubject("x"), ingress(fromNS(deny, "y")), nil)},
			probes: []probe{{"y/a", "x/b", tcp, 80, false}, {"z/a", "x/b", tcp, 80, false}}},
		{name: "admin accept overrides NetworkPolicy isolation",
			nps:    []networkingv1.NetworkPolicy{denyAllIngressNP("x")},
			cnps:   []cnpv1.ClusterNetworkPolicy{cnp("a", admin, 10, nsSubject("x"), ingress(fromNS(accept, "y", tcpPort(80))), nil)},
			probes: []probe{{"y/a", "x/b", tcp, 80, true}, {"y/a", "x/b", tcp, 81, false}, {"y/a", "x/b", udp, 80, false}, {"z/a", "x/b", tcp, 80, false}}},
		{name: "admin egress accept still needs the destination's ingress",
			nps:    []networkingv1.NetworkPolicy{denyAllIngressNP("y")},
			cnps:   []cnpv1.ClusterNetworkPolicy{cnp("a", admin, 10, nsSubject("x"), nil, egress(toNS(accept, "y")))},
			probes: []probe{{"x/a", "y/b", tcp, 80, false}, {"x/a", "z/b", tcp, 80, true}}},
		{name: "lower priority number wins",
			cnps: []cnpv1.ClusterNetworkPolicy{
				cnp("deny-later", admin, 20, nsSubject("x"), ingress(fromNS(deny, "y")), nil),
				cnp("accept-first", admin, 5, nsSubject("x"), ingress(fromNS(accept, "y", tcpPort(80))), nil)},
			probes: []probe{{"y/a", "x/a", tcp, 80, true}, {"y/a", "x/a", tcp, 81, false}}},
		{name: "rule order within a policy",
			cnps: []cnpv1.ClusterNetworkPolicy{cnp("p", admin, 5, nsSubject("x"),
				ingress(fromPod(deny, "y", "a"), fromNS(accept, "y"), fromNS(deny, "z")), nil)},
			nps:    []networkingv1.NetworkPolicy{denyAllIngressNP("x")},
			probes: []probe{{"y/a", "x/a", tcp, 80, false}, {"y/b", "x/a", tcp, 80, true}, {"z/b", "x/a", tcp, 80, false}}},
		{name: "admin pass hands over to NetworkPolicy",
			nps: []networkingv1.NetworkPolicy{allowFromNP("x", "y")},
			cnps: []cnpv1.ClusterNetworkPolicy{
				cnp("pass", admin, 1, nsSubject("x"), ingress(fromNS(pass, "y")), nil),
				cnp("deny", admin, 2, nsSubject("x"), ingress(fromNS(deny, "y"), fromNS(deny, "z")), nil)},
			probes: []probe{{"y/a", "x/a", tcp, 80, true}, {"z/a", "x/a", tcp, 80, false}}},
		{name: "admin pass, NetworkPolicy isolates and denies",
			nps: []networkingv1.NetworkPolicy{allowFromNP("x", "z")},
			cnps: []cnpv1.ClusterNetworkPolicy{
				cnp("pass", admin, 1, nsSubject("x"), ingress(fromNS(pass, "y")), nil),
				cnp("accept", admin, 2, nsSubject("x"), ingress(fromNS(accept, "y")), nil)},
			probes: []probe{{"y/a", "x/a", tcp, 80, false}}},
		{name: "admin pass, no NetworkPolicy: baseline decides",
			cnps: []cnpv1.ClusterNetworkPolicy{
				cnp("pass", admin, 1, nsSubject("x"), ingress(fromNS(pass, "y", tcpPort(80))), nil),
				cnp("deny", admin, 2, nsSubject("x"), ingress(fromNS(deny, "y")), nil),
				cnp("base", baseline, 1, nsSubject("x"), ingress(fromNS(deny, "y", tcpPort(80))), nil)},
			probes: []probe{{"y/a", "x/a", tcp, 80, false}, {"y/a", "x/a", tcp, 81, false}}},
		{name: "admin pass, baseline accepts",
			cnps: []cnpv1.ClusterNetworkPolicy{
				cnp("pass", admin, 1, nsSubject("x"), ingress(fromNS(pass, "y", tcpPort(80))), nil),
				cnp("deny", admin, 2, nsSubject("x"), ingress(fromNS(deny, "y")), nil),
				cnp("base", baseline, 1, nsSubject("x"), ingress(fromNS(accept, "y"), fromNS(deny, "y")), nil)},
			probes: []probe{{"y/a", "x/a", tcp, 80, true}, {"y/a", "x/a", udp, 80, false}}},
		{name: "a later pass does not undo an earlier deny",
			cnps: []cnpv1.ClusterNetworkPolicy{
				cnp("deny", admin, 1, nsSubject("x"), ingress(fromNS(deny, "y")), nil),
				cnp("pass", admin, 2, nsSubject("x"), ingress(fromNS(pass, "y")), nil)},
			probes: []probe{{"y/a", "x/a", tcp, 80, false}}},
		{name: "baseline deny holds without NetworkPolicy",
			cnps:   []cnpv1.ClusterNetworkPolicy{cnp("b", baseline, 1, nsSubject("x"), ingress(fromNS(deny, "y")), nil)},
			probes: []probe{{"y/a", "x/a", tcp, 80, false}, {"z/a", "x/a", tcp, 80, true}}},
		{name: "NetworkPolicy overrides baseline deny",
			nps:    []networkingv1.NetworkPolicy{allowFromNP("x", "y")},
			cnps:   []cnpv1.ClusterNetworkPolicy{cnp("b", baseline, 1, nsSubject("x"), ingress(fromNS(deny, "y")), nil)},
			probes: []probe{{"y/a", "x/a", tcp, 80, true}}},
		{name: "NetworkPolicy isolation overrides baseline accept",
			nps:    []networkingv1.NetworkPolicy{allowFromNP("x", "z")},
			cnps:   []cnpv1.ClusterNetworkPolicy{cnp("b", baseline, 1, nsSubject("x"), ingress(fromNS(accept, "y")), nil)},
			probes: []probe{{"y/a", "x/a", tcp, 80, false}, {"z/a", "x/a", tcp, 80, true}}},
		{name: "baseline pass is the default: allowed",
			cnps: []cnpv1.ClusterNetworkPolicy{
				cnp("p", baseline, 1, nsSubject("x"), ingress(fromNS(pass, "y")), nil),
				cnp("d", baseline, 2, nsSubject("x"), ingress(fromNS(deny, "y"), fromNS(deny, "z")), nil)},
			probes: []probe{{"y/a", "x/a", tcp, 80, true}, {"z/a", "x/a", tcp, 80, false}}},
		{name: "pod subject",
			cnps:   []cnpv1.ClusterNetworkPolicy{cnp("d", admin, 1, podSubject("x", "a"), ingress(fromNS(deny, "y")), nil)},
			probes: []probe{{"y/a", "x/a", tcp, 80, false}, {"y/a", "x/b", tcp, 80, true}}},
		{name: "egress deny to a namespace, UDP range",
			cnps: []cnpv1.ClusterNetworkPolicy{cnp("d", admin, 1, nsSubject("x"), nil, egress(toNS(deny, "y", udpRange(5000, 5300))))},
			probes: []probe{{"x/a", "y/a", udp, 5000, false}, {"x/a", "y/a", udp, 5300, false}, {"x/a", "y/a", udp, 5301, true},
				{"x/a", "y/a", tcp, 5000, true}, {"x/a", "z/a", udp, 5000, true}}},
		{name: "egress networks deny reaches outside and pods alike",
			cnps: []cnpv1.ClusterNetworkPolicy{cnp("d", admin, 1, nsSubject("x"), nil,
				egress(toNS(accept, "z"), toNet(deny, "0.0.0.0/0")))},
			probes: []probe{{"x/a", "192.0.2.1", tcp, 443, false}, {"x/a", "y/a", tcp, 80, false}, {"x/a", "z/a", tcp, 80, true},
				{"x/a", "y/a", "ICMP", 0, false}}},
		{name: "named port resolves on the destination",
			cnps:   []cnpv1.ClusterNetworkPolicy{cnp("d", admin, 1, nsSubject("x"), ingress(fromNS(deny, "y", namedPort("serve-80"))), nil)},
			probes: []probe{{"y/a", "x/c", tcp, 82, false}, {"y/a", "x/c", tcp, 80, true}, {"y/a", "x/a", tcp, 80, false}}},
		{name: "SCTP-only rule matches nothing",
			cnps: []cnpv1.ClusterNetworkPolicy{cnp("d", admin, 1, nsSubject("x"), ingress(fromNS(deny, "y",
				cnpv1.ClusterNetworkPolicyProtocol{SCTP: &cnpv1.ClusterNetworkPolicyProtocolSCTP{DestinationPort: &cnpv1.Port{Number: 80}}})), nil)},
			probes: []probe{{"y/a", "x/a", tcp, 80, true}}},
		{name: "nodes peer fails closed for deny",
			cnps: []cnpv1.ClusterNetworkPolicy{cnp("d", admin, 1, nsSubject("x"), nil, egress(cnpv1.ClusterNetworkPolicyEgressRule{
				Action: deny, To: []cnpv1.ClusterNetworkPolicyEgressPeer{{Nodes: &metav1.LabelSelector{}}}}))},
			probes: []probe{{"x/a", "y/a", tcp, 80, false}, {"y/a", "x/a", tcp, 80, true}}},
		{name: "nodes peer of an accept matches nothing",
			nps: []networkingv1.NetworkPolicy{np("x", "deny-eg", networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}})},
			cnps: []cnpv1.ClusterNetworkPolicy{cnp("a", admin, 1, nsSubject("x"), nil, egress(cnpv1.ClusterNetworkPolicyEgressRule{
				Action: accept, To: []cnpv1.ClusterNetworkPolicyEgressPeer{{Nodes: &metav1.LabelSelector{}}}}))},
			probes: []probe{{"x/a", "y/a", tcp, 80, false}}},
		{name: "the node reaches pods an admin policy denies everything to",
			cnps: []cnpv1.ClusterNetworkPolicy{cnp("d", admin, 1, nsSubject("x"), ingress(
				cnpv1.ClusterNetworkPolicyIngressRule{Action: deny, From: []cnpv1.ClusterNetworkPolicyIngressPeer{{Namespaces: &metav1.LabelSelector{}}}}), nil)},
			probes: []probe{{"10.0.9.1", "x/a", tcp, 10250, true}, {"y/a", "x/a", tcp, 80, false}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := xyz()
			s.Policies, s.ClusterPolicies = c.nps, c.cnps
			ps := Resolve(s)
			for _, p := range c.probes {
				src, dst := addrOf(s, p.src), addrOf(s, p.dst)
				if got := ps.Allowed(src, dst, p.proto, p.port); got != p.allow {
					t.Errorf("Allowed(%s → %s %s/%d) = %v, want %v", p.src, p.dst, p.proto, p.port, got, p.allow)
				}
				if p.proto == tcp || p.proto == udp {
					if got := ps.PairPorts(src, dst).Allows(p.proto, p.port); got != p.allow {
						t.Errorf("PairPorts(%s → %s).Allows(%s/%d) = %v, want %v", p.src, p.dst, p.proto, p.port, got, p.allow)
					}
				}
			}
		})
	}
}

func addrOf(s *Snapshot, k string) netip.Addr {
	if strings.Contains(k, "/") {
		return ip(s, k)
	}
	return netip.MustParseAddr(k)
}

// TestClusterPolicyScopedToVPN: a ClusterNetworkPolicy is read against each VPN's pods
// only. Two VPNs with the same namespaces' pods at overlapping addresses: a policy that
// accepts from y does not name the other VPN's y pods, and the subject set of one VPN
// never holds the other's pods.
func TestClusterPolicyScopedToVPN(t *testing.T) {
	pol := cnp("a", cnpv1.AdminTier, 1, nsSubject("x"), ingress(fromNS(accept, "y"), fromNS(deny, "z")), nil)
	// VPN t1 owns x and y; VPN t2 owns z. Each snapshot holds its own pods only.
	t1, t2 := xyz(), xyz()
	t1.VPN, t2.VPN = "t1", "t2"
	t1.Pods = filterPods(t1.Pods, "x", "y")
	t2.Pods = filterPods(t2.Pods, "z")
	t1.ClusterPolicies, t2.ClusterPolicies = []cnpv1.ClusterNetworkPolicy{pol}, []cnpv1.ClusterNetworkPolicy{pol}
	p1, p2 := Resolve(t1), Resolve(t2)
	// t2's z pods share their addresses with nothing in t1, but an address of t2 seen in
	// t1 is no pod there: the deny from z does not apply to it (only to t1's z pods, of
	// which there are none), and t2 has no x pods for the policy to govern.
	z := netip.MustParseAddr("10.0.2.10")
	if !p1.Allowed(z, ip(t1, "x/a"), tcp, 80) {
		t.Error("an address of another VPN must not be taken for that VPN's namespace")
	}
	if !p1.Allowed(ip(t1, "y/a"), ip(t1, "x/a"), tcp, 80) {
		t.Error("y → x accepted")
	}
	if p2.Governed("z/a", Ingress) || len(p2.Compile().ACLs) != 0 {
		t.Error("a VPN whose pods the policy does not select needs no rows")
	}
}

func filterPods(ps []Pod, nss ...string) []Pod {
	var out []Pod
	for _, p := range ps {
		for _, n := range nss {
			if p.Namespace == n {
				out = append(out, p)
			}
		}
	}
	return out
}

func TestClusterPolicyProblems(t *testing.T) {
	s := xyz()
	s.ClusterPolicies = []cnpv1.ClusterNetworkPolicy{
		cnp("sctp", cnpv1.AdminTier, 1, nsSubject("x"), ingress(fromNS(deny, "y",
			cnpv1.ClusterNetworkPolicyProtocol{SCTP: &cnpv1.ClusterNetworkPolicyProtocolSCTP{DestinationPort: &cnpv1.Port{Number: 80}}})), nil),
		cnp("dns", cnpv1.AdminTier, 2, nsSubject("x"), nil, egress(cnpv1.ClusterNetworkPolicyEgressRule{
			Name: "to-example", Action: accept, To: []cnpv1.ClusterNetworkPolicyEgressPeer{{DomainNames: []cnpv1.DomainName{"example.com"}}}})),
	}
	ps := Resolve(s)
	var got []string
	for _, p := range ps.Problems {
		if !p.Cluster {
			t.Errorf("problem %v not marked as a ClusterNetworkPolicy's", p)
		}
		got = append(got, p.String())
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{"cnp:sctp: ingress rule 0: SCTP", "cnp:dns: egress rule 0 (to-example): domainNames peers are not supported: that peer matches nothing"} {
		if !strings.Contains(all, want) {
			t.Errorf("problems\n%s\nlack %q", all, want)
		}
	}
}

func TestGoverned(t *testing.T) {
	s := xyz()
	s.ClusterPolicies = []cnpv1.ClusterNetworkPolicy{cnp("b", cnpv1.BaselineTier, 1, podSubject("x", "a"), nil, egress(toNS(deny, "y")))}
	ps := Resolve(s)
	if !ps.Governed("x/a", Egress) || ps.Governed("x/a", Ingress) || ps.Governed("x/b", Egress) {
		t.Error("a CNP governs its subjects in the directions it has rules for, and no other pod")
	}
	if ps.Isolated("x/a", Egress) {
		t.Error("a CNP isolates no pod in the NetworkPolicy sense")
	}
}
