package policy

import (
	"fmt"
	"net/netip"
	"sort"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Direction is the side of a pod a rule governs.
type Direction int

// The two directions of a NetworkPolicy.
const (
	Ingress Direction = iota
	Egress
)

func (d Direction) String() string {
	if d == Egress {
		return "egress"
	}
	return "ingress"
}

// resolved is one policy read against a Snapshot.
type resolved struct {
	key      string // namespace/name
	subjects []*Pod
	types    [2]bool
	rules    [2][]rule
}

// rule is one ingress or egress rule with its peers looked up in the VPN.
type rule struct {
	// anyPeer: from/to omitted or empty (every source or destination).
	anyPeer bool
	// selectors: the rule has pod/namespace selector peers; pods are what they select.
	selectors bool
	pods      []*Pod
	blocks    []ipBlock
	anyPort   bool
	ports     []portMatch
	// none: every port the rule named was refused (SCTP), so it allows nothing.
	none bool
}

type ipBlock struct {
	cidr   netip.Prefix
	except []netip.Prefix
}

func (b ipBlock) contains(a netip.Addr) bool {
	if !b.cidr.Contains(a) {
		return false
	}
	for _, e := range b.except {
		if e.Contains(a) {
			return false
		}
	}
	return true
}

// portMatch is a protocol with a port range (lo..hi), a port name, or neither (every
// port of the protocol).
type portMatch struct {
	proto  corev1.Protocol
	lo, hi int32
	name   string
}

// Problem is a part of a policy that cannot be realised.
type Problem struct {
	// Policy is "namespace/name", or ClusterPolicyKey(name) when Cluster is set.
	Policy  string
	Message string
	// Cluster: the problem is a ClusterNetworkPolicy's.
	Cluster bool
}

func (p Problem) String() string { return p.Policy + ": " + p.Message }

// resolveAll reads every policy of the snapshot, in a stable order.
func (ix *index) resolveAll() ([]resolved, []Problem) {
	var out []resolved
	var problems []Problem
	pols := ix.s.Policies
	order := make([]int, len(pols))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool {
		pa, pb := &pols[order[a]], &pols[order[b]]
		if pa.Namespace != pb.Namespace {
			return pa.Namespace < pb.Namespace
		}
		return pa.Name < pb.Name
	})
	for _, i := range order {
		r, probs := ix.resolve(&pols[i])
		out = append(out, r)
		problems = append(problems, probs...)
	}
	return out, problems
}

func (ix *index) resolve(np *networkingv1.NetworkPolicy) (resolved, []Problem) {
	r := resolved{key: np.Namespace + "/" + np.Name}
	var problems []Problem
	bad := func(format string, args ...any) {
		problems = append(problems, Problem{Policy: r.key, Message: fmt.Sprintf(format, args...)})
	}
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil {
		bad("podSelector: %v", err)
		return r, problems // selects nothing: an unreadable policy isolates no pod
	}
	for i := range ix.s.Pods {
		p := &ix.s.Pods[i]
		if p.Namespace == np.Namespace && sel.Matches(labels.Set(p.Labels)) {
			r.subjects = append(r.subjects, p)
		}
	}
	if len(np.Spec.PolicyTypes) == 0 {
		r.types[Ingress] = true
		r.types[Egress] = len(np.Spec.Egress) > 0
	}
	for _, t := range np.Spec.PolicyTypes {
		switch t {
		case networkingv1.PolicyTypeIngress:
			r.types[Ingress] = true
		case networkingv1.PolicyTypeEgress:
			r.types[Egress] = true
		}
	}
	for i, in := range np.Spec.Ingress {
		ru, probs := ix.rule(np.Namespace, in.From, in.Ports)
		for _, m := range probs {
			bad("ingress rule %d: %s", i, m)
		}
		r.rules[Ingress] = append(r.rules[Ingress], ru)
	}
	for i, eg := range np.Spec.Egress {
		ru, probs := ix.rule(np.Namespace, eg.To, eg.Ports)
		for _, m := range probs {
			bad("egress rule %d: %s", i, m)
		}
		r.rules[Egress] = append(r.rules[Egress], ru)
	}
	return r, problems
}

func (ix *index) rule(ns string, peers []networkingv1.NetworkPolicyPeer, ports []networkingv1.NetworkPolicyPort) (rule, []string) {
	var ru rule
	var problems []string
	ru.anyPeer = len(peers) == 0
	seen := map[*Pod]bool{}
	for _, peer := range peers {
		if peer.IPBlock != nil {
			b, err := parseBlock(peer.IPBlock)
			if err != nil {
				problems = append(problems, err.Error())
				continue
			}
			ru.blocks = append(ru.blocks, b)
			continue
		}
		if peer.PodSelector == nil && peer.NamespaceSelector == nil {
			continue
		}
		ru.selectors = true
		podSel, nsSel := labels.Everything(), labels.Selector(nil)
		if peer.PodSelector != nil {
			s, err := metav1.LabelSelectorAsSelector(peer.PodSelector)
			if err != nil {
				problems = append(problems, "podSelector: "+err.Error())
				continue
			}
			podSel = s
		}
		if peer.NamespaceSelector != nil {
			s, err := metav1.LabelSelectorAsSelector(peer.NamespaceSelector)
			if err != nil {
				problems = append(problems, "namespaceSelector: "+err.Error())
				continue
			}
			nsSel = s
		}
		for i := range ix.s.Pods {
			p := &ix.s.Pods[i]
			if seen[p] || !podSel.Matches(labels.Set(p.Labels)) {
				continue
			}
			if nsSel == nil && p.Namespace != ns {
				continue
			}
			if nsSel != nil {
				if _, known := ix.nsByName[p.Namespace]; !known || !nsSel.Matches(ix.nsLabels(p.Namespace)) {
					continue
				}
			}
			seen[p] = true
			ru.pods = append(ru.pods, p)
		}
	}
	ru.anyPort = len(ports) == 0
	for _, pp := range ports {
		proto := corev1.ProtocolTCP
		if pp.Protocol != nil {
			proto = *pp.Protocol
		}
		if proto != corev1.ProtocolTCP && proto != corev1.ProtocolUDP {
			problems = append(problems, fmt.Sprintf("protocol %s is not supported (no SCTP on this datapath): the port allows nothing", proto))
			continue
		}
		m := portMatch{proto: proto}
		switch {
		case pp.Port == nil:
		case pp.Port.StrVal != "" && pp.Port.IntVal == 0:
			m.name = pp.Port.StrVal
		default:
			m.lo, m.hi = pp.Port.IntVal, pp.Port.IntVal
			if pp.EndPort != nil && *pp.EndPort >= m.lo {
				m.hi = *pp.EndPort
			}
		}
		ru.ports = append(ru.ports, m)
	}
	ru.none = len(ports) > 0 && len(ru.ports) == 0
	return ru, problems
}

func parseBlock(b *networkingv1.IPBlock) (ipBlock, error) {
	cidr, err := netip.ParsePrefix(b.CIDR)
	if err != nil {
		return ipBlock{}, fmt.Errorf("ipBlock %q: %w", b.CIDR, err)
	}
	if !cidr.Addr().Is4() {
		return ipBlock{}, fmt.Errorf("ipBlock %s: only IPv4 is supported", b.CIDR)
	}
	out := ipBlock{cidr: cidr.Masked()}
	for _, e := range b.Except {
		p, err := netip.ParsePrefix(e)
		if err != nil {
			return ipBlock{}, fmt.Errorf("ipBlock except %q: %w", e, err)
		}
		out.except = append(out.except, p.Masked())
	}
	return out, nil
}
