// Package policytest draws random NetworkPolicies and ClusterNetworkPolicies over the
// upstream suite's layout (namespaces x, y, z labelled ns=<name>; pods a, b, c labelled
// pod=<name> at 10.0.<i>.<10+j>, naming ports "serve-80", "dns" and "mixed"), for tests
// that compare two realisations of policy (policy.PairPorts, OVN ACLs) against
// policy.Allowed. It imports no sdncni package, so package policy's own tests can use it.
package policytest

import (
	"fmt"
	"math/rand/v2"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	cnpv1 "sigs.k8s.io/network-policy-api/apis/v1beta1"
)

func labelSel(kv ...string) *metav1.LabelSelector {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return &metav1.LabelSelector{MatchLabels: m}
}

func npPort(proto corev1.Protocol, p intstr.IntOrString, end *int32) networkingv1.NetworkPolicyPort {
	return networkingv1.NetworkPolicyPort{Protocol: &proto, Port: &p, EndPort: end}
}

func netpol(ns, name string, spec networkingv1.NetworkPolicySpec) networkingv1.NetworkPolicy {
	return networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
}

// RandomPolicy draws a policy over the xyz layout: selectors by pod and namespace,
// ipBlocks with excepts, ports by number, range, name and none, TCP, UDP and SCTP.
func RandomPolicy(r *rand.Rand, i int) networkingv1.NetworkPolicy {
	nss, pods := []string{"x", "y", "z"}, []string{"a", "b", "c"}
	pick := func(xs []string) string { return xs[r.IntN(len(xs))] }
	selector := func(key string, vals []string) *metav1.LabelSelector {
		switch r.IntN(3) {
		case 0:
			return &metav1.LabelSelector{}
		case 1:
			return labelSel(key, pick(vals))
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
			proto := []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP}[r.IntN(5)]
			switch r.IntN(5) {
			case 0:
				out = append(out, networkingv1.NetworkPolicyPort{Protocol: &proto})
			case 1:
				out = append(out, npPort(proto, intstr.FromInt32(int32(75+r.IntN(10))), nil))
			case 2:
				end := int32(80 + r.IntN(2000))
				out = append(out, npPort(proto, intstr.FromInt32(int32(70+r.IntN(20))), &end))
			case 3:
				out = append(out, npPort(proto, intstr.FromString(pick([]string{"serve-80", "dns", "mixed", "nope"})), nil))
			default:
				out = append(out, npPort(proto, intstr.FromInt32(int32(5300+r.IntN(9))), nil))
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
	return netpol(pick(nss), fmt.Sprintf("p%d", i), spec)
}

// RandomClusterPolicy draws a ClusterNetworkPolicy over the xyz layout: either tier,
// priorities that collide, namespace or pod subjects, every action, namespace, pod and
// network peers (and an unsupported nodes peer), ports by number, range and name, SCTP.
func RandomClusterPolicy(r *rand.Rand, i int) cnpv1.ClusterNetworkPolicy {
	nss, pods := []string{"x", "y", "z"}, []string{"a", "b", "c"}
	pick := func(xs []string) string { return xs[r.IntN(len(xs))] }
	selector := func(key string, vals []string) *metav1.LabelSelector {
		switch r.IntN(3) {
		case 0:
			return &metav1.LabelSelector{}
		case 1:
			return labelSel(key, pick(vals))
		default:
			return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key: key, Operator: metav1.LabelSelectorOpNotIn, Values: []string{pick(vals)}}}}
		}
	}
	namespaced := func() *cnpv1.NamespacedPod {
		return &cnpv1.NamespacedPod{NamespaceSelector: *selector("ns", nss), PodSelector: *selector("pod", pods)}
	}
	action := func() cnpv1.ClusterNetworkPolicyRuleAction {
		return []cnpv1.ClusterNetworkPolicyRuleAction{cnpv1.ClusterNetworkPolicyRuleActionAccept, cnpv1.ClusterNetworkPolicyRuleActionDeny, cnpv1.ClusterNetworkPolicyRuleActionPass}[r.IntN(3)]
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

// ClusterPorts are the port numbers ClusterNetworkPolicies name.
func ClusterPorts(cps []cnpv1.ClusterNetworkPolicy) []int32 {
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
