package main

import (
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/sdncni/sdncni/pkg/policy"
)

// The benchmark's Kubernetes namespace (the only one of its VPN) and ports.
const (
	benchNS  = "bench"
	echoPort = 7002 // UDP: a pod answers each datagram with the datagram
	peerPort = 7001 // TCP: what each policy admits from the peer pods
)

// Labels of the benchmark pods: grp=g<i> is pod i's own group (what a policy selects),
// peer=yes marks the pods every policy admits on peerPort. The probers have neither.
const (
	labelGroup = "grp"
	labelPeer  = "peer"
)

func group(i int) string { return fmt.Sprintf("g%d", i) }

// podLabels are pod i's labels: its group, and peer=yes for every other pod.
func podLabels(i int) map[string]string {
	l := map[string]string{labelGroup: group(i)}
	if i%2 == 0 {
		l[labelPeer] = "yes"
	}
	return l
}

// targetPolicy selects the pods of group g and admits only TCP peerPort from the peer
// pods: every other ingress (the probers' UDP) is denied. Each policy gets its own
// address sets (subjects, peers) and ACL, as a tenant's policies would.
func targetPolicy(name, g string) *networkingv1.NetworkPolicy {
	tcp := corev1.ProtocolTCP
	port := intstr.FromInt32(peerPort)
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: benchNS, Name: name},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{labelGroup: g}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{labelPeer: "yes"}}}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port}},
			}},
		},
	}
}

// syntheticSnapshot is a VPN of pods pods and policies policies of the benchmark's
// shape (policy j selects group j mod pods), two nodes' management addresses, for
// timing pkg/policy without a cluster.
func syntheticSnapshot(pods, policies int) *policy.Snapshot {
	s := &policy.Snapshot{VPN: "vpn-bench",
		Namespaces: []policy.Namespace{{Name: benchNS, Labels: map[string]string{"kubernetes.io/metadata.name": benchNS}}},
		NodeAddrs:  []netip.Addr{netip.MustParseAddr("10.93.0.1"), netip.MustParseAddr("10.93.0.65")}}
	base := netip.MustParseAddr("10.93.1.0")
	for i := range pods {
		a := base
		for range i {
			a = a.Next()
		}
		s.Pods = append(s.Pods, policy.Pod{Namespace: benchNS, Name: fmt.Sprintf("pod-%d", i), Labels: podLabels(i), IP: a,
			Node: fmt.Sprintf("node-%d", i%2)})
	}
	for j := range policies {
		s.Policies = append(s.Policies, *targetPolicy(fmt.Sprintf("bulk-%d", j), group(j%pods)))
	}
	return s
}

// Labels of the throughput pods (all on node 0): tput=governed is the pair the
// throughput policies select, tput=free the pair no policy selects.
const (
	labelTput    = "tput"
	tputGoverned = "governed"
	tputFree     = "free"
)

// tputPolicy selects the governed pair for ingress and egress and admits the iperf3
// traffic between its pods (TCP iperfPort, both ways); a second ingress rule admits the
// pods of group g on peerPort, so that each policy is distinct, a tenant's own, with its
// own address sets and ACLs. The pair's verdict, the union over the policies, is TCP
// iperfPort: one range, which the fast path holds.
func tputPolicy(name, g string) *networkingv1.NetworkPolicy {
	tcp := corev1.ProtocolTCP
	iperf, peer := intstr.FromInt32(iperfPort), intstr.FromInt32(peerPort)
	pair := []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{labelTput: tputGoverned}}}}
	ports := []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &iperf}}
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: benchNS, Name: name},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{labelTput: tputGoverned}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{
				{From: pair, Ports: ports},
				{
					From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{labelGroup: g}}}},
					Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &peer}},
				},
			},
			Egress: []networkingv1.NetworkPolicyEgressRule{{To: pair, Ports: ports}},
		},
	}
}
