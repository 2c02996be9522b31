package policy

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	cnpv1 "sigs.k8s.io/network-policy-api/apis/v1beta1"
)

// pairLayout is xyz with a second named port per pod (UDP, numbers differing per pod)
// and a name two pods give different protocols.
func pairLayout() *Snapshot {
	s := xyz()
	for i := range s.Pods {
		p := &s.Pods[i]
		p.Ports = append(p.Ports, NamedPort{Name: "dns", Protocol: udp, Port: 5300 + int32(i)})
		if i%2 == 0 {
			p.Ports = append(p.Ports, NamedPort{Name: "mixed", Protocol: tcp, Port: 9000})
		} else {
			p.Ports = append(p.Ports, NamedPort{Name: "mixed", Protocol: udp, Port: 9001})
		}
	}
	return s
}

// randomPolicy draws a policy over the xyz layout: selectors by pod and namespace,
// ipBlocks with excepts, ports by number, range, name and none, TCP, UDP and SCTP.
func randomPolicy(r *rand.Rand, i int) networkingv1.NetworkPolicy {
	nss, pods := []string{"x", "y", "z"}, []string{"a", "b", "c"}
	pick := func(xs []string) string { return xs[r.IntN(len(xs))] }
	selector := func(key string, vals []string) *metav1.LabelSelector {
		switch r.IntN(3) {
		case 0:
			return &metav1.LabelSelector{}
		case 1:
			return sel(key, pick(vals))
		default:
			return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key: key, Operator: metav1.LabelSelectorOpNotIn, Values: []string{pick(vals)}}}}
		}
	}
	peers := func() []networkingv1.NetworkPolicyPeer {
		var out []networkingv1.NetworkPolicyPeer
		for range r.IntN(3) {
			switch r.IntN(4) {
			case 0:
				out = append(out, networkingv1.NetworkPolicyPeer{PodSelector: selector("pod", pods)})
			case 1:
				out = append(out, networkingv1.NetworkPolicyPeer{NamespaceSelector: selector("ns", nss)})
			case 2:
				out = append(out, networkingv1.NetworkPolicyPeer{PodSelector: selector("pod", pods), NamespaceSelector: selector("ns", nss)})
			default:
				b := &networkingv1.IPBlock{CIDR: fmt.Sprintf("10.0.%d.0/24", r.IntN(3))}
				if r.IntN(2) == 0 {
					b.Except = []string{fmt.Sprintf("10.0.%d.%d/31", r.IntN(3), 10+r.IntN(3))}
				}
				out = append(out, networkingv1.NetworkPolicyPeer{IPBlock: b})
			}
		}
		return out
	}
	ports := func() []networkingv1.NetworkPolicyPort {
		var out []networkingv1.NetworkPolicyPort
		for range r.IntN(4) {
			proto := []corev1.Protocol{tcp, udp, tcp, udp, sctp}[r.IntN(5)]
			switch r.IntN(5) {
			case 0:
				out = append(out, networkingv1.NetworkPolicyPort{Protocol: &proto})
			case 1:
				out = append(out, port(proto, intstr.FromInt32(int32(75+r.IntN(10))), nil))
			case 2:
				end := int32(80 + r.IntN(2000))
				out = append(out, port(proto, intstr.FromInt32(int32(70+r.IntN(20))), &end))
			case 3:
				out = append(out, port(proto, intstr.FromString(pick([]string{"serve-80", "dns", "mixed", "nope"})), nil))
			default:
				out = append(out, port(proto, intstr.FromInt32(int32(5300+r.IntN(9))), nil))
			}
		}
		return out
	}
	spec := networkingv1.NetworkPolicySpec{PodSelector: *selector("pod", pods)}
	for range r.IntN(3) {
		spec.Ingress = append(spec.Ingress, networkingv1.NetworkPolicyIngressRule{From: peers(), Ports: ports()})
	}
	for range r.IntN(3) {
		spec.Egress = append(spec.Egress, networkingv1.NetworkPolicyEgressRule{To: peers(), Ports: ports()})
	}
	switch r.IntN(4) {
	case 0: // inferred
	case 1:
		spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	case 2:
		spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
	default:
		spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}
	}
	return np(pick(nss), fmt.Sprintf("p%d", i), spec)
}

// randomClusterPolicy draws a ClusterNetworkPolicy over the xyz layout: either tier,
// priorities that collide, namespace or pod subjects, every action, namespace, pod and
// network peers (and an unsupported nodes peer), ports by number, range and name, SCTP.
func randomClusterPolicy(r *rand.Rand, i int) cnpv1.ClusterNetworkPolicy {
	nss, pods := []string{"x", "y", "z"}, []string{"a", "b", "c"}
	pick := func(xs []string) string { return xs[r.IntN(len(xs))] }
	selector := func(key string, vals []string) *metav1.LabelSelector {
		switch r.IntN(3) {
		case 0:
			return &metav1.LabelSelector{}
		case 1:
			return sel(key, pick(vals))
		default:
			return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key: key, Operator: metav1.LabelSelectorOpNotIn, Values: []string{pick(vals)}}}}
		}
	}
	namespaced := func() *cnpv1.NamespacedPod {
		return &cnpv1.NamespacedPod{NamespaceSelector: *selector("ns", nss), PodSelector: *selector("pod", pods)}
	}
	action := func() cnpv1.ClusterNetworkPolicyRuleAction {
		return []cnpv1.ClusterNetworkPolicyRuleAction{accept, deny, pass}[r.IntN(3)]
	}
	protocols := func() []cnpv1.ClusterNetworkPolicyProtocol {
		var out []cnpv1.ClusterNetworkPolicyProtocol
		for range r.IntN(3) {
			p := &cnpv1.Port{Number: int32(75 + r.IntN(10))}
			if r.IntN(2) == 0 {
				lo := int32(70 + r.IntN(20))
				p = &cnpv1.Port{Range: &cnpv1.PortRange{Start: lo, End: lo + 1 + int32(r.IntN(2000))}}
			}
			switch r.IntN(5) {
			case 0, 1:
				out = append(out, cnpv1.ClusterNetworkPolicyProtocol{TCP: &cnpv1.ClusterNetworkPolicyProtocolTCP{DestinationPort: p}})
			case 2:
				out = append(out, cnpv1.ClusterNetworkPolicyProtocol{UDP: &cnpv1.ClusterNetworkPolicyProtocolUDP{DestinationPort: p}})
			case 3:
				out = append(out, cnpv1.ClusterNetworkPolicyProtocol{DestinationNamedPort: pick([]string{"serve-80", "dns", "mixed", "nope"})})
			default:
				out = append(out, cnpv1.ClusterNetworkPolicyProtocol{SCTP: &cnpv1.ClusterNetworkPolicyProtocolSCTP{DestinationPort: p}})
			}
		}
		return out
	}
	peer := func(egress bool) cnpv1.ClusterNetworkPolicyEgressPeer {
		n := 2
		if egress {
			n = 5
		}
		switch r.IntN(n) {
		case 0:
			return cnpv1.ClusterNetworkPolicyEgressPeer{Namespaces: selector("ns", nss)}
		case 1:
			return cnpv1.ClusterNetworkPolicyEgressPeer{Pods: namespaced()}
		case 2, 3:
			return cnpv1.ClusterNetworkPolicyEgressPeer{Networks: []cnpv1.CIDR{
				cnpv1.CIDR(fmt.Sprintf("10.0.%d.%d/31", r.IntN(3), 10+r.IntN(3))),
				cnpv1.CIDR([]string{"0.0.0.0/0", "192.0.2.0/24", "10.0.1.0/24", "fd00::/8"}[r.IntN(4)])}}
		default:
			return cnpv1.ClusterNetworkPolicyEgressPeer{Nodes: &metav1.LabelSelector{}}
		}
	}
	spec := cnpv1.ClusterNetworkPolicySpec{Tier: []cnpv1.Tier{cnpv1.AdminTier, cnpv1.BaselineTier}[r.IntN(2)], Priority: int32(r.IntN(4))}
	if r.IntN(2) == 0 {
		spec.Subject.Namespaces = selector("ns", nss)
	} else {
		spec.Subject.Pods = namespaced()
	}
	for range r.IntN(4) {
		in := cnpv1.ClusterNetworkPolicyIngressRule{Action: action(), Protocols: protocols()}
		for range 1 + r.IntN(2) {
			p := peer(false)
			in.From = append(in.From, cnpv1.ClusterNetworkPolicyIngressPeer{Namespaces: p.Namespaces, Pods: p.Pods})
		}
		spec.Ingress = append(spec.Ingress, in)
	}
	for range r.IntN(4) {
		eg := cnpv1.ClusterNetworkPolicyEgressRule{Action: action(), Protocols: protocols()}
		for range 1 + r.IntN(2) {
			eg.To = append(eg.To, peer(true))
		}
		spec.Egress = append(spec.Egress, eg)
	}
	return cnpv1.ClusterNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("c%d", i)}, Spec: spec}
}

// clusterPorts are the port numbers ClusterNetworkPolicies name.
func clusterPorts(cps []cnpv1.ClusterNetworkPolicy) []int32 {
	var out []int32
	add := func(prs []cnpv1.ClusterNetworkPolicyProtocol) {
		for _, pr := range prs {
			var p *cnpv1.Port
			switch {
			case pr.TCP != nil:
				p = pr.TCP.DestinationPort
			case pr.UDP != nil:
				p = pr.UDP.DestinationPort
			}
			if p == nil {
				continue
			}
			out = append(out, p.Number)
			if p.Range != nil {
				out = append(out, p.Range.Start, p.Range.End)
			}
		}
	}
	for _, c := range cps {
		for _, in := range c.Spec.Ingress {
			add(in.Protocols)
		}
		for _, eg := range c.Spec.Egress {
			add(eg.Protocols)
		}
	}
	return out
}

// samplePorts are the ports worth probing: every number a policy or pod names with its
// neighbours (range edges), the extremes and a few random ones.
func samplePorts(r *rand.Rand, s *Snapshot) []int32 {
	set := map[int32]bool{0: true, 1: true, 65534: true, 65535: true}
	add := func(p int32) {
		for _, q := range []int32{p - 1, p, p + 1} {
			if q >= 0 && q <= 65535 {
				set[q] = true
			}
		}
	}
	for _, p := range s.Pods {
		for _, n := range p.Ports {
			add(n.Port)
		}
	}
	for _, pol := range s.Policies {
		var all []networkingv1.NetworkPolicyPort
		for _, in := range pol.Spec.Ingress {
			all = append(all, in.Ports...)
		}
		for _, eg := range pol.Spec.Egress {
			all = append(all, eg.Ports...)
		}
		for _, pp := range all {
			if pp.Port != nil && pp.Port.IntVal != 0 {
				add(pp.Port.IntVal)
			}
			if pp.EndPort != nil {
				add(*pp.EndPort)
			}
		}
	}
	for _, p := range clusterPorts(s.ClusterPolicies) {
		if p != 0 {
			add(p)
		}
	}
	for range 8 {
		set[int32(r.IntN(65536))] = true
	}
	out := make([]int32, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// TestPairPortsAgreesWithAllowed: for 300 random scenarios of NetworkPolicies, 300 of
// NetworkPolicies and ClusterNetworkPolicies of both tiers and 100 of
// ClusterNetworkPolicies alone, every ordered pair of the layout (and a pod with an
// outside address and the node), TCP and UDP at every sampled port: PairPorts allows
// exactly what Allowed does; All only when ICMP is allowed too (and, without cluster
// policies, exactly then); and a snapshot of only the pair's two pods gives the same
// verdict as the full one (what the node role relies on).
func TestPairPortsAgreesWithAllowed(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 2))
	type scenario struct {
		pols []networkingv1.NetworkPolicy
		cnps []cnpv1.ClusterNetworkPolicy
	}
	scenarios := []scenario{{}}
	for k := range 700 {
		var sc scenario
		if k < 600 {
			for i := range 1 + r.IntN(4) {
				sc.pols = append(sc.pols, randomPolicy(r, i))
			}
		}
		if k >= 300 {
			for i := range 1 + r.IntN(4) {
				sc.cnps = append(sc.cnps, randomClusterPolicy(r, i))
			}
		}
		scenarios = append(scenarios, sc)
	}
	outside, node := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("10.0.9.1")
	checked, allowed, all := 0, 0, 0
	for si, sc := range scenarios {
		pols := sc
		s := pairLayout()
		s.Policies, s.ClusterPolicies = sc.pols, sc.cnps
		ps := Resolve(s)
		addrs := []netip.Addr{outside, node}
		for _, p := range s.Pods {
			addrs = append(addrs, p.IP)
		}
		ports := samplePorts(r, s)
		for _, src := range addrs {
			for _, dst := range addrs {
				if src == dst || (ps.byIP[src] == nil && ps.byIP[dst] == nil) {
					continue
				}
				v := ps.PairPorts(src, dst)
				icmp := ps.Allowed(src, dst, "ICMP", 0)
				if v.All && !icmp || len(sc.cnps) == 0 && v.All != icmp {
					t.Fatalf("scenario %d %v: %s → %s: All = %v, ICMP allowed = %v", si, pols, src, dst, v.All, icmp)
				}
				if v.All {
					all++
				}
				for _, proto := range []corev1.Protocol{tcp, udp} {
					for _, p := range ports {
						want := ps.Allowed(src, dst, proto, p)
						if got := v.Allows(proto, p); got != want {
							t.Fatalf("scenario %d %v: %s → %s %s/%d: PairPorts %v allows=%v, Allowed=%v", si, pols, src, dst, proto, p, v, got, want)
						}
						checked++
						if want {
							allowed++
						}
					}
				}
				requireNormalised(t, v.Ranges)
				if ps.byIP[src] != nil && ps.byIP[dst] != nil {
					local := pairLayout()
					local.Policies, local.ClusterPolicies = sc.pols, sc.cnps
					local.Pods = slices.DeleteFunc(local.Pods, func(p Pod) bool { return p.IP != src && p.IP != dst })
					if lv := Resolve(local).PairPorts(src, dst); !slices.Equal(lv.Ranges, v.Ranges) || lv.All != v.All {
						t.Fatalf("scenario %d: %s → %s: two-pod snapshot gives %v, full %v", si, src, dst, lv, v)
					}
				}
			}
		}
	}
	t.Logf("%d scenarios, %d verdicts checked (%d allowed), %d pairs allowing everything", len(scenarios), checked, allowed, all)
	if allowed == 0 || allowed == checked || all == 0 {
		t.Fatal("the scenarios do not exercise both outcomes")
	}
}

func requireNormalised(t *testing.T, rs []PortRange) {
	t.Helper()
	for i, r := range rs {
		if r.Lo > r.Hi || (r.Protocol != tcp && r.Protocol != udp) {
			t.Fatalf("bad range %v", r)
		}
		if i > 0 && rs[i-1].Protocol == r.Protocol && rs[i-1].Hi+1 >= r.Lo {
			t.Fatalf("ranges %v not merged", rs)
		}
	}
}

func TestPairPortsExamples(t *testing.T) {
	end := int32(90)
	s := xyz()
	s.Policies = []networkingv1.NetworkPolicy{
		np("x", "in", networkingv1.NetworkPolicySpec{PodSelector: *sel("pod", "a"),
			Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{
				port(tcp, intstr.FromInt32(81), &end), port(tcp, intstr.FromInt32(85), nil), port(udp, intstr.FromString("serve-80"), nil),
				port(tcp, intstr.FromString("serve-80"), nil)}}}}),
		np("y", "eg", networkingv1.NetworkPolicySpec{PodSelector: *sel("pod", "a"), PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
			Egress: []networkingv1.NetworkPolicyEgressRule{{Ports: []networkingv1.NetworkPolicyPort{port(tcp, intstr.FromInt32(88), &[]int32{100}[0])}}}}),
	}
	ps := Resolve(s)
	cases := []struct {
		src, dst string
		want     PairVerdict
	}{
		{"y/b", "x/b", PairVerdict{All: true}},
		// 81-90 and the named port's 80 merge; UDP has no "serve-80" on x/a.
		{"y/b", "x/a", PairVerdict{Ranges: []PortRange{{tcp, 80, 90}}}},
		{"y/a", "x/a", PairVerdict{Ranges: []PortRange{{tcp, 88, 90}}}},
		{"y/a", "z/a", PairVerdict{Ranges: []PortRange{{tcp, 88, 100}}}},
	}
	for _, c := range cases {
		got := ps.PairPorts(ip(s, c.src), ip(s, c.dst))
		if got.All != c.want.All || !slices.Equal(got.Ranges, c.want.Ranges) {
			t.Errorf("%s → %s: %+v, want %+v", c.src, c.dst, got, c.want)
		}
	}
}
