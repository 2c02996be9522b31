package policy

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	cnpv1 "sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/sdncni/sdncni/pkg/policy/policytest"
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
	for _, p := range policytest.ClusterPorts(s.ClusterPolicies) {
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
				sc.pols = append(sc.pols, policytest.RandomPolicy(r, i))
			}
		}
		if k >= 300 {
			for i := range 1 + r.IntN(4) {
				sc.cnps = append(sc.cnps, policytest.RandomClusterPolicy(r, i))
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
