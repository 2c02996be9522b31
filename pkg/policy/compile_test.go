package policy

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	cnpv1 "sigs.k8s.io/network-policy-api/apis/v1beta1"
)

func matches(r Rules) string {
	var b strings.Builder
	for _, a := range r.ACLs {
		b.WriteString(a.Direction + " " + a.Action + " " + a.Match + "\n")
	}
	return b.String()
}

func TestCompileNoPoliciesNoRows(t *testing.T) {
	if r := Resolve(xyz()).Compile(); len(r.ACLs) != 0 || len(r.AddressSets) != 0 {
		t.Fatalf("a VPN without policies must stay stateless, got %+v", r)
	}
}

func TestCompileLayout(t *testing.T) {
	s := xyz()
	end := int32(90)
	s.Policies = []networkingv1.NetworkPolicy{np("x", "p", networkingv1.NetworkPolicySpec{
		PodSelector: *sel("pod", "a"),
		PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
		Ingress: []networkingv1.NetworkPolicyIngressRule{{
			From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: sel("ns", "y")},
				{IPBlock: &networkingv1.IPBlock{CIDR: "192.0.2.0/24", Except: []string{"192.0.2.8/29"}}}},
			Ports: []networkingv1.NetworkPolicyPort{port(tcp, intstr.FromInt32(80), &end), port(udp, intstr.FromString("serve-80"), nil)},
		}},
		Egress: []networkingv1.NetworkPolicyEgressRule{{Ports: []networkingv1.NetworkPolicyPort{port(tcp, intstr.FromString("serve-80"), nil)}}},
	})}
	r := Resolve(s).Compile()
	got := matches(r)
	subj := SetName("t", "x/p", "subjects")
	peers := SetName("t", "x/p", "ingress-0-peers")
	for _, want := range []string{
		"to-lport allow-related ip4.src == $" + SetName("t", "", "nodes"),
		"to-lport drop ip4.dst == $" + SetName("t", "", "isolated-ingress"),
		"from-lport drop ip4.src == $" + SetName("t", "", "isolated-egress"),
		"to-lport allow-related ip4.dst == $" + subj + " && (ip4.src == $" + peers +
			" || (ip4.src == 192.0.2.0/24 && ip4.src != {192.0.2.8/29})) && ((tcp.dst >= 80 && tcp.dst <= 90))",
		// No pod of x/p gives serve-80 to UDP: the named UDP port matches nothing.
		// Egress by name: one ACL per number the destinations give it.
		"from-lport allow-related ip4.src == $" + subj + " && ip4.dst == {10.0.0.10, 10.0.1.10, 10.0.2.10} && tcp.dst == 80",
		"from-lport allow-related ip4.src == $" + subj + " && ip4.dst == {10.0.0.11, 10.0.1.11, 10.0.2.11} && tcp.dst == 81",
		"from-lport allow-related ip4.src == $" + subj + " && ip4.dst == {10.0.0.12, 10.0.1.12, 10.0.2.12} && tcp.dst == 82",
	} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("missing ACL\n  %s\nin\n%s", want, got)
		}
	}
	if strings.Contains(got, "udp") {
		t.Errorf("an unresolvable named UDP port must match nothing:\n%s", got)
	}
	sets := map[string]int{}
	for _, a := range r.AddressSets {
		sets[a.Name] = len(a.Addrs)
	}
	if sets[subj] != 1 || sets[peers] != 3 || sets[SetName("t", "", "isolated-ingress")] != 1 {
		t.Errorf("address sets %v", sets)
	}
	for _, a := range r.ACLs {
		if a.Direction == FromLport && !a.AfterLB {
			t.Errorf("egress ACL %q must run after load balancing", a.Match)
		}
	}
	if again := Resolve(s).Compile(); matches(again) != got {
		t.Error("Compile is not deterministic")
	}
}

func TestCompileSCTPOnlyRuleAllowsNothing(t *testing.T) {
	s := xyz()
	s.Policies = []networkingv1.NetworkPolicy{np("x", "p", networkingv1.NetworkPolicySpec{
		Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{port(sctp, intstr.FromInt32(80), nil)}}}})}
	for _, a := range Resolve(s).Compile().ACLs {
		if a.Priority == PriorityAllow {
			t.Errorf("a rule whose only port is refused must allow nothing, got %q", a.Match)
		}
	}
}

// TestCompileClusterLayout: the Admin tier's rules take priorities from 29999 down in
// evaluation order, the Baseline tier's from 9999; an Admin Pass rule becomes copies of
// the lower tiers' ACLs (NetworkPolicy allow, isolation, each Baseline rule) ANDed with
// its match, in their order, then its match as allow-related — never OVN's pass action,
// which would skip NetworkPolicy too. A VPN whose pods no cluster policy selects has
// no rows.
func TestCompileClusterLayout(t *testing.T) {
	s := xyz()
	s.Policies = []networkingv1.NetworkPolicy{allowFromNP("x", "z")}
	s.ClusterPolicies = []cnpv1.ClusterNetworkPolicy{
		cnp("deny", cnpv1.AdminTier, 2, nsSubject("x"), ingress(fromNS(deny, "y")), nil),
		cnp("pass", cnpv1.AdminTier, 1, nsSubject("x"), ingress(fromNS(pass, "y", tcpPort(80))), nil),
		cnp("base", cnpv1.BaselineTier, 1, nsSubject("x"), ingress(fromNS(accept, "y"), fromNS(deny, "z")), nil),
	}
	r := Resolve(s).Compile()
	require.Empty(t, r.Problems)
	subj := "ip4.dst == $" + SetName("t", ClusterPolicyKey("pass"), "subjects")
	passMatch := subj + " && (ip4.src == $" + SetName("t", ClusterPolicyKey("pass"), "ingress-0-peers") + ") && (tcp.dst == 80)"
	base := "ip4.dst == $" + SetName("t", ClusterPolicyKey("base"), "subjects")
	got := map[string]string{}
	for _, a := range r.ACLs {
		require.NotEqual(t, "pass", a.Action)
		if a.Direction == ToLport {
			got[fmt.Sprintf("%d %s", a.Priority, a.Action)] += a.Match + "\n"
		}
	}
	npAllow := "ip4.dst == $" + SetName("t", "x/from-z", "subjects") + " && (ip4.src == $" + SetName("t", "x/from-z", "ingress-0-peers") + ") && ip4"
	want := map[string]string{
		"29999 allow-related": "(" + passMatch + ") && (" + npAllow + ")\n",
		"29998 drop":          "(" + passMatch + ") && (ip4.dst == $" + SetName("t", "", "isolated-ingress") + ")\n",
		"29997 allow-related": "(" + passMatch + ") && (" + base + " && (ip4.src == $" + SetName("t", ClusterPolicyKey("base"), "ingress-0-peers") + ") && ip4)\n",
		"29996 drop":          "(" + passMatch + ") && (" + base + " && (ip4.src == $" + SetName("t", ClusterPolicyKey("base"), "ingress-1-peers") + ") && ip4)\n",
		"29995 allow-related": passMatch + "\n",
		"29994 drop":          "ip4.dst == $" + SetName("t", ClusterPolicyKey("deny"), "subjects") + " && (ip4.src == $" + SetName("t", ClusterPolicyKey("deny"), "ingress-0-peers") + ") && ip4\n",
		"9999 allow-related":  base + " && (ip4.src == $" + SetName("t", ClusterPolicyKey("base"), "ingress-0-peers") + ") && ip4\n",
		"9998 drop":           base + " && (ip4.src == $" + SetName("t", ClusterPolicyKey("base"), "ingress-1-peers") + ") && ip4\n",
	}
	for k, v := range want {
		require.Equal(t, v, got[k], "priority %s", k)
	}

	other := xyz()
	other.Pods = filterPods(other.Pods, "y", "z")
	other.ClusterPolicies = s.ClusterPolicies
	require.Empty(t, Resolve(other).Compile().ACLs, "no pod of the VPN is a subject")
}

// TestCompileTierFull: rules that find no priority left in their tier are reported, not
// silently dropped.
func TestCompileTierFull(t *testing.T) {
	s := xyz()
	for i := range 401 {
		var rules []cnpv1.ClusterNetworkPolicyIngressRule
		for range 25 {
			rules = append(rules, fromNS(deny, "y"))
		}
		s.ClusterPolicies = append(s.ClusterPolicies, cnp(fmt.Sprintf("p%03d", i), cnpv1.BaselineTier, int32(i), nsSubject("x"), rules, nil))
	}
	r := Resolve(s).Compile()
	require.Len(t, r.Problems, 25*401-9000)
	require.Contains(t, r.Problems[0].String(), "no room left in the Baseline tier")
}
