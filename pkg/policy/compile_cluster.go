package policy

import (
	"fmt"
	"slices"
	"strings"
)

// clusterSubjects reports whether a ClusterNetworkPolicy with a rule selects a pod of
// the VPN: only then does it need rows here.
func (ps *Policies) clusterSubjects() bool {
	for i := range ps.cluster {
		c := &ps.cluster[i]
		if len(c.subjects) > 0 && len(c.rules[Ingress])+len(c.rules[Egress]) > 0 {
			return true
		}
	}
	return false
}

// level is a group of ACLs of one direction that share a priority: a rule of a tier.
type level struct {
	acls []ACL // Priority unset
	pass bool  // an Admin Pass rule
	name string
}

// clusterTiers adds the ACLs of both ClusterNetworkPolicy tiers, after the
// NetworkPolicy ACLs are in c.acls.
//
// OVN 23.03 has no ACL tiers: in each direction the one ACL of highest priority that
// matches decides. Accept and Deny rules are allow-related and drop ACLs at priorities
// that follow the evaluation order. A Pass rule cannot be OVN's pass action (it would
// skip NetworkPolicy's ACLs too), and it cannot be a hole punched into the lower Admin
// rules (a negated address set becomes a flow per bit combination in OpenFlow). So it is
// realised positively: at its place in the Admin order, a copy of every lower tier's
// ACL, each ANDed with the Pass rule's match, in the lower tiers' own order
// (NetworkPolicy allows, NetworkPolicy isolation, each Baseline rule), then the Pass
// match itself as allow-related (what no tier decides is allowed). Traffic a Pass rule
// matches therefore gets exactly the verdict NetworkPolicy and Baseline give it, above
// every lower Admin rule. A Baseline Pass hands over to the default, which allows:
// allow-related.
func (c *compiler) clusterTiers() {
	for _, d := range []Direction{Ingress, Egress} {
		dir := ToLport
		if d == Egress {
			dir = FromLport
		}
		var allow, isolate level
		for _, a := range c.acls {
			if a.Direction != dir {
				continue
			}
			switch a.Priority {
			case PriorityAllow:
				allow.acls = append(allow.acls, a)
			case PriorityIsolate:
				isolate.acls = append(isolate.acls, a)
			}
		}
		baseline := c.tierLevels(Baseline, d)
		c.place(Baseline, baseline, nil)
		lower := []level{allow, isolate}
		lower = append(lower, baseline...)
		lower = slices.DeleteFunc(lower, func(l level) bool { return len(l.acls) == 0 })
		c.place(Admin, c.tierLevels(Admin, d), lower)
	}
}

// place gives the levels of tier t priorities, downwards from the tier's top; a Pass
// level takes one priority per lower level and one more. A level that finds no room is
// left out and reported.
func (c *compiler) place(t Tier, levels, lower []level) {
	p, bottom := PriorityAdminTop, PriorityAdminBottom
	if t == Baseline {
		p, bottom = PriorityBaselineTop, PriorityBaselineBottom
	}
	for _, l := range levels {
		need := 1
		if l.pass {
			need += len(lower)
		}
		if p-need+1 < bottom {
			c.problems = append(c.problems, Problem{Policy: l.acls[0].Policy, Cluster: true,
				Message: fmt.Sprintf("%s: VPN %s: no room left in the %s tier's ACL priorities: the rule is not realised", l.name, c.vpn, t)})
			continue
		}
		if !l.pass {
			for _, a := range l.acls {
				a.Priority = p
				c.acls = append(c.acls, a)
			}
			p--
			continue
		}
		for _, low := range lower {
			for _, pk := range l.acls {
				for _, a := range low.acls {
					c.acls = append(c.acls, ACL{Direction: pk.Direction, Priority: p, AfterLB: pk.AfterLB, Policy: pk.Policy,
						Match: "(" + pk.Match + ") && (" + a.Match + ")", Action: a.Action})
				}
			}
			p--
		}
		for _, a := range l.acls {
			a.Priority, a.Action = p, AllowRelated
			c.acls = append(c.acls, a)
		}
		p--
	}
}

// tierLevels are tier t's rules of direction d, in evaluation order, as levels (rules
// that match nothing in this VPN are left out).
func (c *compiler) tierLevels(t Tier, d Direction) []level {
	var out []level
	for i := range c.ps.cluster {
		r := &c.ps.cluster[i]
		if r.tier != t || len(r.subjects) == 0 {
			continue
		}
		for j := range r.rules[d] {
			ru := &r.rules[d][j]
			acls := c.clusterRule(r, d, ru)
			if len(acls) == 0 {
				continue
			}
			out = append(out, level{acls: acls, pass: ru.action == Pass && t == Admin,
				name: fmt.Sprintf("%s rule %d", d, ru.index)})
		}
	}
	return out
}

// clusterRule is the ACLs (without priority) of one rule: subjects, peers and ports,
// one ACL per number a named port resolves to.
func (c *compiler) clusterRule(r *clusterResolved, d Direction, ru *clusterRule) []ACL {
	if ru.none {
		return nil
	}
	self, peerField, dir := "ip4.dst", "ip4.src", ToLport
	if d == Egress {
		self, peerField, dir = "ip4.src", "ip4.dst", FromLport
	}
	action := AllowRelated
	if ru.action == Deny {
		action = Drop
	}
	subjects := c.set("subjects", r.key, addrsOf(sortedPods(r.subjects)))
	peer := ""
	if !ru.anyPeer {
		var terms []string
		if len(ru.pods) > 0 {
			terms = append(terms, peerField+" == $"+c.set(fmt.Sprintf("%s-%d-peers", d, ru.index), r.key, addrsOf(sortedPods(ru.pods))))
		}
		for _, n := range ru.networks {
			terms = append(terms, peerField+" == "+n.String())
		}
		peer = "(" + strings.Join(terms, " || ") + ")"
	}
	var out []ACL
	acl := func(parts ...string) {
		m := slices.DeleteFunc(parts, func(s string) bool { return s == "" })
		out = append(out, ACL{Direction: dir, Match: strings.Join(m, " && "), Action: action, AfterLB: d == Egress, Policy: r.key})
	}
	portACLs(d, self+" == $"+subjects, peer, ru.anyPort, ru.ports, func() []*Pod {
		if d == Egress {
			return c.clusterEgressTargets(ru)
		}
		return sortedPods(r.subjects)
	}, acl)
	return out
}

// clusterEgressTargets are the pods an egress rule's named port resolves on: its peers.
func (c *compiler) clusterEgressTargets(ru *clusterRule) []*Pod {
	var out []*Pod
	for i := range c.ps.ix.s.Pods {
		p := &c.ps.ix.s.Pods[i]
		if ru.peerMatches(p.IP, p) {
			out = append(out, p)
		}
	}
	return out
}

// sortedPods is the set's pods in snapshot order (the order Compile's output must not
// depend on map iteration for).
func sortedPods(m map[*Pod]bool) []*Pod {
	out := make([]*Pod, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b *Pod) int { return a.IP.Compare(b.IP) })
	return out
}
