package policy

import (
	"fmt"
	"net/netip"
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	cnpv1 "sigs.k8s.io/network-policy-api/apis/v1beta1"
)

// Tier is a ClusterNetworkPolicy tier: Admin is evaluated before NetworkPolicy,
// Baseline after it.
type Tier int

// The two tiers of ClusterNetworkPolicy.
const (
	Admin Tier = iota
	Baseline
)

func (t Tier) String() string {
	if t == Baseline {
		return "Baseline"
	}
	return "Admin"
}

// Action is what a ClusterNetworkPolicy rule does with the traffic it matches.
type Action int

// The actions of a ClusterNetworkPolicy rule (policy.networking.k8s.io): Accept and
// Deny decide; Pass skips the tier's remaining rules and hands the traffic to the next
// tier (Admin → NetworkPolicy → Baseline → allowed).
const (
	Accept Action = iota
	Deny
	Pass
)

// ClusterPolicyKey is the key of a ClusterNetworkPolicy in Problems, ACLs and address
// sets: "cnp:<name>". A NetworkPolicy's key is "<namespace>/<name>"; a namespace name
// holds no ':', so the two never collide.
func ClusterPolicyKey(name string) string { return "cnp:" + name }

// clusterResolved is one ClusterNetworkPolicy read against a Snapshot.
type clusterResolved struct {
	key      string
	name     string
	tier     Tier
	priority int32
	subjects map[*Pod]bool
	rules    [2][]clusterRule
}

// clusterRule is one ingress or egress rule of a ClusterNetworkPolicy with its peers
// looked up in the VPN.
type clusterRule struct {
	index  int
	action Action
	// anyPeer: the rule matches every peer. Set only to fail closed: a Deny or Pass
	// rule with a peer we cannot read (or do not implement) denies every peer.
	anyPeer bool
	pods    map[*Pod]bool
	// networks are egress CIDR peers, in the VPN's address space.
	networks []netip.Prefix
	anyPort  bool
	ports    []portMatch
	// none: the rule matches nothing (every protocol it named was refused, or an Accept
	// rule without a usable peer).
	none bool
}

// peerMatches reports whether the rule's peers hold peer (peerPod when it is a pod of the
// VPN).
func (ru *clusterRule) peerMatches(peer netip.Addr, peerPod *Pod) bool {
	if ru.none {
		return false
	}
	if ru.anyPeer || (peerPod != nil && ru.pods[peerPod]) {
		return true
	}
	for _, n := range ru.networks {
		if n.Contains(peer) {
			return true
		}
	}
	return false
}

// resolveClusterAll reads the snapshot's ClusterNetworkPolicies in evaluation order:
// tier, then priority (lower first), then name (the API leaves the order of equal
// priorities to the implementation; by name it is at least stable).
func (ix *index) resolveClusterAll() ([]clusterResolved, []Problem) {
	var out []clusterResolved
	var problems []Problem
	for i := range ix.s.ClusterPolicies {
		r, probs := ix.resolveCluster(&ix.s.ClusterPolicies[i])
		problems = append(problems, probs...)
		if r != nil {
			out = append(out, *r)
		}
	}
	sort.SliceStable(out, func(a, b int) bool {
		if out[a].tier != out[b].tier {
			return out[a].tier < out[b].tier
		}
		if out[a].priority != out[b].priority {
			return out[a].priority < out[b].priority
		}
		return out[a].name < out[b].name
	})
	return out, problems
}

func (ix *index) resolveCluster(p *cnpv1.ClusterNetworkPolicy) (*clusterResolved, []Problem) {
	key := ClusterPolicyKey(p.Name)
	var problems []Problem
	bad := func(format string, args ...any) {
		problems = append(problems, Problem{Policy: key, Cluster: true, Message: fmt.Sprintf(format, args...)})
	}
	r := &clusterResolved{key: key, name: p.Name, priority: p.Spec.Priority, subjects: map[*Pod]bool{}}
	switch p.Spec.Tier {
	case cnpv1.AdminTier:
		r.tier = Admin
	case cnpv1.BaselineTier:
		r.tier = Baseline
	default:
		bad("unknown tier %q: the policy is ignored", p.Spec.Tier)
		return nil, problems
	}
	subj, err := ix.namespacedPods(p.Spec.Subject.Namespaces, p.Spec.Subject.Pods)
	if err != nil {
		bad("subject: %v: the policy selects no pod", err)
		return nil, problems
	}
	r.subjects = subj
	for i, in := range p.Spec.Ingress {
		peers := make([]cnpv1.ClusterNetworkPolicyEgressPeer, len(in.From))
		for j, f := range in.From {
			peers[j] = cnpv1.ClusterNetworkPolicyEgressPeer{Namespaces: f.Namespaces, Pods: f.Pods}
		}
		ru, probs := ix.clusterRule(i, in.Action, peers, in.Protocols)
		for _, m := range probs {
			bad("ingress rule %s: %s", ruleName(i, in.Name), m)
		}
		r.rules[Ingress] = append(r.rules[Ingress], ru)
	}
	for i, eg := range p.Spec.Egress {
		ru, probs := ix.clusterRule(i, eg.Action, eg.To, eg.Protocols)
		for _, m := range probs {
			bad("egress rule %s: %s", ruleName(i, eg.Name), m)
		}
		r.rules[Egress] = append(r.rules[Egress], ru)
	}
	return r, problems
}

func ruleName(i int, name string) string {
	if name == "" {
		return fmt.Sprint(i)
	}
	return fmt.Sprintf("%d (%s)", i, name)
}

// namespacedPods returns the VPN's pods in the namespaces ns selects, or those pods
// selects (namespace AND pod selector). Exactly one of them is set.
func (ix *index) namespacedPods(ns *metav1.LabelSelector, pods *cnpv1.NamespacedPod) (map[*Pod]bool, error) {
	var nsSel, podSel labels.Selector
	var err error
	switch {
	case ns != nil && pods == nil:
		if nsSel, err = metav1.LabelSelectorAsSelector(ns); err != nil {
			return nil, fmt.Errorf("namespaces: %w", err)
		}
		podSel = labels.Everything()
	case pods != nil && ns == nil:
		if nsSel, err = metav1.LabelSelectorAsSelector(&pods.NamespaceSelector); err != nil {
			return nil, fmt.Errorf("pods.namespaceSelector: %w", err)
		}
		if podSel, err = metav1.LabelSelectorAsSelector(&pods.PodSelector); err != nil {
			return nil, fmt.Errorf("pods.podSelector: %w", err)
		}
	default:
		return nil, fmt.Errorf("exactly one of namespaces and pods must be set")
	}
	out := map[*Pod]bool{}
	for i := range ix.s.Pods {
		p := &ix.s.Pods[i]
		if _, known := ix.nsByName[p.Namespace]; known && nsSel.Matches(ix.nsLabels(p.Namespace)) && podSel.Matches(labels.Set(p.Labels)) {
			out[p] = true
		}
	}
	return out, nil
}

// clusterRule reads one rule. A peer that cannot be read or is not implemented (nodes,
// domainNames) fails closed as the API asks: an Accept rule does not match through it,
// a Deny or Pass rule matches every peer (and is reported).
func (ix *index) clusterRule(i int, action cnpv1.ClusterNetworkPolicyRuleAction, peers []cnpv1.ClusterNetworkPolicyEgressPeer, protocols []cnpv1.ClusterNetworkPolicyProtocol) (clusterRule, []string) {
	ru := clusterRule{index: i, pods: map[*Pod]bool{}}
	var problems []string
	switch action {
	case cnpv1.ClusterNetworkPolicyRuleActionAccept:
		ru.action = Accept
	case cnpv1.ClusterNetworkPolicyRuleActionDeny:
		ru.action = Deny
	case cnpv1.ClusterNetworkPolicyRuleActionPass:
		ru.action = Pass
	default:
		problems = append(problems, fmt.Sprintf("unknown action %q: the rule denies every peer", action))
		ru.action, ru.anyPeer = Deny, true
	}
	unusable := func(why string) {
		if ru.action == Accept {
			problems = append(problems, why+": that peer matches nothing")
			return
		}
		problems = append(problems, why+": the rule matches every peer (fail closed)")
		ru.anyPeer = true
	}
	for _, peer := range peers {
		switch {
		case peer.Nodes != nil:
			unusable("nodes peers are not supported")
		case len(peer.DomainNames) > 0:
			unusable("domainNames peers are not supported")
		case len(peer.Networks) > 0:
			for _, c := range peer.Networks {
				pfx, err := netip.ParsePrefix(string(c))
				if err != nil {
					unusable(fmt.Sprintf("network %q: %v", c, err))
					continue
				}
				if pfx.Addr().Is4() { // IPv6 networks match no address of an IPv4 VPN
					ru.networks = append(ru.networks, pfx.Masked())
				}
			}
		case peer.Namespaces != nil || peer.Pods != nil:
			pods, err := ix.namespacedPods(peer.Namespaces, peer.Pods)
			if err != nil {
				unusable(err.Error())
				continue
			}
			for p := range pods {
				ru.pods[p] = true
			}
		default:
			unusable("a peer without a field this version knows")
		}
	}
	ru.anyPort = len(protocols) == 0
	for _, pr := range protocols {
		switch {
		case pr.TCP != nil:
			ru.ports = append(ru.ports, clusterPort(corev1.ProtocolTCP, pr.TCP.DestinationPort))
		case pr.UDP != nil:
			ru.ports = append(ru.ports, clusterPort(corev1.ProtocolUDP, pr.UDP.DestinationPort))
		case pr.DestinationNamedPort != "":
			// A name is resolved on the destination pod, for whichever protocol it
			// gives the name.
			ru.ports = append(ru.ports,
				portMatch{proto: corev1.ProtocolTCP, name: pr.DestinationNamedPort},
				portMatch{proto: corev1.ProtocolUDP, name: pr.DestinationNamedPort})
		case pr.SCTP != nil:
			problems = append(problems, "SCTP is not supported (no SCTP on this datapath): the protocol matches nothing")
		default:
			problems = append(problems, "a protocol without a field this version knows matches nothing")
		}
	}
	ru.none = (!ru.anyPort && len(ru.ports) == 0) || (!ru.anyPeer && len(ru.pods) == 0 && len(ru.networks) == 0)
	return ru, problems
}

func clusterPort(proto corev1.Protocol, p *cnpv1.Port) portMatch {
	m := portMatch{proto: proto}
	switch {
	case p == nil:
	case p.Range != nil:
		m.lo, m.hi = p.Range.Start, p.Range.End
	case p.Number != 0:
		m.lo, m.hi = p.Number, p.Number
	}
	return m
}
