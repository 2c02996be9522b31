package policy

import (
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
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
