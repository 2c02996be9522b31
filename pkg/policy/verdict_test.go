package policy

import (
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

var (
	tcp  = corev1.ProtocolTCP
	udp  = corev1.ProtocolUDP
	sctp = corev1.ProtocolSCTP
)

// xyz is the upstream suite's layout: namespaces x, y, z with pods a, b, c each, in one
// VPN, plus a node address.
func xyz() *Snapshot {
	s := &Snapshot{VPN: "t", NodeAddrs: []netip.Addr{netip.MustParseAddr("10.0.9.1")}}
	for i, ns := range []string{"x", "y", "z"} {
		s.Namespaces = append(s.Namespaces, Namespace{Name: ns, Labels: map[string]string{"ns": ns}})
		for j, pod := range []string{"a", "b", "c"} {
			s.Pods = append(s.Pods, Pod{Namespace: ns, Name: pod, Labels: map[string]string{"pod": pod},
				IP:    netip.AddrFrom4([4]byte{10, 0, byte(i), byte(10 + j)}),
				Ports: []NamedPort{{Name: "serve-80", Protocol: tcp, Port: 80 + int32(j)}}})
		}
	}
	return s
}

func ip(s *Snapshot, key string) netip.Addr {
	for _, p := range s.Pods {
		if p.Key() == key {
			return p.IP
		}
	}
	panic(key)
}

func np(ns, name string, spec networkingv1.NetworkPolicySpec) networkingv1.NetworkPolicy {
	return networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
}

func sel(kv ...string) *metav1.LabelSelector {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return &metav1.LabelSelector{MatchLabels: m}
}

func port(proto corev1.Protocol, p intstr.IntOrString, end *int32) networkingv1.NetworkPolicyPort {
	return networkingv1.NetworkPolicyPort{Protocol: &proto, Port: &p, EndPort: end}
}

func TestAllowed(t *testing.T) {
	end := int32(90)
	cases := []struct {
		name  string
		pol   networkingv1.NetworkPolicy
		src   string // pod key or address
		dst   string
		proto corev1.Protocol
		port  int32
		allow bool
	}{
		{"no policy", networkingv1.NetworkPolicy{}, "x/a", "y/b", tcp, 80, true},
		{"deny all ingress", np("x", "deny", networkingv1.NetworkPolicySpec{}), "y/a", "x/a", tcp, 80, false},
		{"deny all ingress keeps egress", np("x", "deny", networkingv1.NetworkPolicySpec{}), "x/a", "y/a", tcp, 80, true},
		{"deny all ingress lets the node in", np("x", "deny", networkingv1.NetworkPolicySpec{}), "10.0.9.1", "x/a", tcp, 80, true},
		{"deny all egress", np("x", "deny", networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}}), "x/a", "y/a", udp, 53, false},
		{"pod selector same namespace", np("x", "p", networkingv1.NetworkPolicySpec{PodSelector: *sel("pod", "a"),
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{PodSelector: sel("pod", "b")}}}}}), "x/b", "x/a", tcp, 80, true},
		{"pod selector is not another namespace's", np("x", "p", networkingv1.NetworkPolicySpec{PodSelector: *sel("pod", "a"),
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{PodSelector: sel("pod", "b")}}}}}), "y/b", "x/a", tcp, 80, false},
		{"namespace selector", np("x", "p", networkingv1.NetworkPolicySpec{
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: sel("ns", "y")}}}}}), "y/c", "x/b", tcp, 80, true},
		{"namespace and pod selector", np("x", "p", networkingv1.NetworkPolicySpec{
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: sel("ns", "y"), PodSelector: sel("pod", "a")}}}}}), "y/c", "x/b", tcp, 80, false},
		{"ipBlock except", np("x", "p", networkingv1.NetworkPolicySpec{
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.1.0/24", Except: []string{"10.0.1.10/32"}}}}}}}), "y/a", "x/a", tcp, 80, false},
		{"ipBlock", np("x", "p", networkingv1.NetworkPolicySpec{
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.1.0/24", Except: []string{"10.0.1.10/32"}}}}}}}), "y/b", "x/a", tcp, 80, true},
		{"port range", np("x", "p", networkingv1.NetworkPolicySpec{
			Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{port(tcp, intstr.FromInt32(81), &end)}}}}), "y/b", "x/a", tcp, 90, true},
		{"port range other protocol", np("x", "p", networkingv1.NetworkPolicySpec{
			Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{port(tcp, intstr.FromInt32(81), &end)}}}}), "y/b", "x/a", udp, 85, false},
		{"ports exclude icmp", np("x", "p", networkingv1.NetworkPolicySpec{
			Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{port(tcp, intstr.FromInt32(80), nil)}}}}), "y/b", "x/a", "ICMP", 0, false},
		{"named port on the destination", np("x", "p", networkingv1.NetworkPolicySpec{
			Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{port(tcp, intstr.FromString("serve-80"), nil)}}}}), "y/b", "x/c", tcp, 82, true},
		{"named port, another pod's number", np("x", "p", networkingv1.NetworkPolicySpec{
			Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{port(tcp, intstr.FromString("serve-80"), nil)}}}}), "y/b", "x/c", tcp, 80, false},
		{"egress named port resolves on the peer", np("x", "p", networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
			Egress: []networkingv1.NetworkPolicyEgressRule{{Ports: []networkingv1.NetworkPolicyPort{port(tcp, intstr.FromString("serve-80"), nil)}}}}), "x/a", "z/b", tcp, 81, true},
		{"sctp allows nothing", np("x", "p", networkingv1.NetworkPolicySpec{
			Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{port(sctp, intstr.FromInt32(80), nil)}}}}), "y/b", "x/a", tcp, 80, false},
		{"egress to outside by ipBlock", np("x", "p", networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
			Egress: []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0"}}}}}}), "x/a", "192.0.2.1", tcp, 443, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := xyz()
			if c.pol.Name != "" {
				s.Policies = append(s.Policies, c.pol)
			}
			addr := func(k string) netip.Addr {
				if strings.Contains(k, "/") {
					return ip(s, k)
				}
				return netip.MustParseAddr(k)
			}
			if got := Resolve(s).Allowed(addr(c.src), addr(c.dst), c.proto, c.port); got != c.allow {
				t.Errorf("Allowed(%s → %s %s/%d) = %v, want %v", c.src, c.dst, c.proto, c.port, got, c.allow)
			}
		})
	}
}

func TestSCTPIsAProblem(t *testing.T) {
	s := xyz()
	s.Policies = []networkingv1.NetworkPolicy{np("x", "p", networkingv1.NetworkPolicySpec{
		Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{port(sctp, intstr.FromInt32(80), nil)}}}})}
	ps := Resolve(s)
	if len(ps.Problems) != 1 || !strings.Contains(ps.Problems[0].String(), "SCTP") {
		t.Fatalf("problems %v, want one about SCTP", ps.Problems)
	}
}

func TestPolicyTypesInferred(t *testing.T) {
	s := xyz()
	s.Policies = []networkingv1.NetworkPolicy{np("x", "p", networkingv1.NetworkPolicySpec{PodSelector: *sel("pod", "a"),
		Egress: []networkingv1.NetworkPolicyEgressRule{{}}})}
	ps := Resolve(s)
	if !ps.Isolated("x/a", Ingress) || !ps.Isolated("x/a", Egress) {
		t.Error("a policy with egress rules and no policyTypes must isolate both directions")
	}
	if ps.Isolated("x/b", Ingress) {
		t.Error("x/b is not selected")
	}
}
