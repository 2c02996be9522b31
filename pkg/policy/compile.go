package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// ACL priorities on a VPN's logical switch. OVN evaluates the highest matching priority
// first, and only that one decides (OVN 23.03 has no ACL tiers); the ClusterNetworkPolicy
// tiers take the ranges around NetworkPolicy: Admin above it, Baseline below its
// isolation.
const (
	// PriorityNode lets the nodes reach their pods (kubelet's probes) whatever the policy.
	PriorityNode = 32700
	// PriorityAdminTop..PriorityAdminBottom: the Admin tier, its rules in order downwards.
	PriorityAdminTop    = 29999
	PriorityAdminBottom = 20000
	PriorityAllow       = 10001 // NetworkPolicy rules (a union: every allow at one priority)
	PriorityIsolate     = 10000 // NetworkPolicy isolation: the rest of an isolated pod's traffic
	// PriorityBaselineTop..PriorityBaselineBottom: the Baseline tier.
	PriorityBaselineTop    = 9999
	PriorityBaselineBottom = 1000
)

// OVN ACL directions and actions Compile uses.
const (
	ToLport      = "to-lport"   // ingress of the destination pod
	FromLport    = "from-lport" // egress of the source pod
	AllowRelated = "allow-related"
	Drop         = "drop"
)

// AddressSet is an OVN address set Compile wants, named in ACL matches as $Name.
type AddressSet struct {
	Name  string
	Addrs []netip.Addr
	// Policy is the policy it belongs to ("" for the VPN's own sets).
	Policy string
}

// ACL is an OVN ACL Compile wants on the VPN's logical switch.
type ACL struct {
	Direction string
	Priority  int
	Match     string
	Action    string
	// AfterLB evaluates a from-lport ACL after load balancing (options:apply-after-lb),
	// so an egress rule sees a Service's backend, not its virtual IP.
	AfterLB bool
	Policy  string
}

// Key identifies the ACL by everything that makes it what it is.
func (a ACL) Key() string {
	return hash(fmt.Sprint(a.Direction, a.Priority, a.Match, a.Action, a.AfterLB))
}

// Rules is what a VPN's policies need in OVN.
type Rules struct {
	AddressSets []AddressSet
	ACLs        []ACL
	// Problems: rules Compile could not give a priority (a tier's range is full).
	Problems []Problem
}

// Compile returns the address sets and ACLs that enforce the policies on the VPN's
// logical switch. A VPN without policies needs none (traffic stays stateless). Output is
// sorted, so equal inputs give equal Rules.
func (ps *Policies) Compile() Rules {
	var out Rules
	if len(ps.resolved) == 0 && !ps.clusterSubjects() {
		return out
	}
	vpn := ps.ix.s.VPN
	c := compiler{vpn: vpn, ps: ps, sets: map[string]AddressSet{}}
	isolated := [2]map[*Pod]bool{{}, {}}
	for i := range ps.resolved {
		r := &ps.resolved[i]
		for _, d := range []Direction{Ingress, Egress} {
			if !r.types[d] {
				continue
			}
			for _, p := range r.subjects {
				isolated[d][p] = true
			}
			for j := range r.rules[d] {
				c.rule(r, d, j)
			}
		}
	}
	nodes := c.set("nodes", "", ps.ix.s.NodeAddrs)
	c.acls = append(c.acls, ACL{Direction: ToLport, Priority: PriorityNode,
		Match: "ip4.src == $" + nodes, Action: AllowRelated})
	in := c.set("isolated-ingress", "", keys(isolated[Ingress]))
	eg := c.set("isolated-egress", "", keys(isolated[Egress]))
	c.acls = append(c.acls,
		ACL{Direction: ToLport, Priority: PriorityIsolate, Match: "ip4.dst == $" + in, Action: Drop},
		ACL{Direction: FromLport, Priority: PriorityIsolate, Match: "ip4.src == $" + eg, Action: Drop, AfterLB: true})
	c.clusterTiers()
	for _, s := range c.sets {
		out.AddressSets = append(out.AddressSets, s)
	}
	sort.Slice(out.AddressSets, func(i, j int) bool { return out.AddressSets[i].Name < out.AddressSets[j].Name })
	out.ACLs = c.acls
	sort.Slice(out.ACLs, func(i, j int) bool { return out.ACLs[i].Key() < out.ACLs[j].Key() })
	out.ACLs = slices.CompactFunc(out.ACLs, func(a, b ACL) bool { return a.Key() == b.Key() })
	out.Problems = c.problems
	return out
}

type compiler struct {
	vpn  string
	ps   *Policies
	sets map[string]AddressSet
	acls []ACL
	// problems are the ClusterNetworkPolicy rules that found no room in their tier.
	problems []Problem
}

// set records an address set of the VPN named by the parts and returns its name.
func (c *compiler) set(part, policy string, addrs []netip.Addr) string {
	name := SetName(c.vpn, policy, part)
	a := slices.Clone(addrs)
	slices.SortFunc(a, func(x, y netip.Addr) int { return x.Compare(y) })
	c.sets[name] = AddressSet{Name: name, Addrs: slices.Compact(a), Policy: policy}
	return name
}

// SetName is the OVN name of an address set: a letter, then hex (OVN's $name syntax
// allows no '/' or '-'), unique per VPN, policy and part.
func SetName(vpn, policy, part string) string {
	return "sdncni_" + hash(vpn + "\x00" + policy + "\x00" + part)[:20]
}

func (c *compiler) rule(r *resolved, d Direction, j int) {
	ru := &r.rules[d][j]
	if ru.none {
		return
	}
	self, peerField, dir := "ip4.dst", "ip4.src", ToLport
	if d == Egress {
		self, peerField, dir = "ip4.src", "ip4.dst", FromLport
	}
	subjects := c.set("subjects", r.key, addrsOf(r.subjects))
	peer := ""
	if !ru.anyPeer {
		var terms []string
		if ru.selectors {
			terms = append(terms, peerField+" == $"+c.set(fmt.Sprintf("%s-%d-peers", d, j), r.key, addrsOf(ru.pods)))
		}
		for _, b := range ru.blocks {
			terms = append(terms, blockMatch(peerField, b))
		}
		if len(terms) == 0 {
			return // every peer was unreadable: the rule allows nothing
		}
		peer = "(" + strings.Join(terms, " || ") + ")"
	}
	acl := func(parts ...string) {
		m := slices.DeleteFunc(parts, func(s string) bool { return s == "" })
		c.acls = append(c.acls, ACL{Direction: dir, Priority: PriorityAllow, Match: strings.Join(m, " && "),
			Action: AllowRelated, AfterLB: d == Egress, Policy: r.key})
	}
	portACLs(d, self+" == $"+subjects, peer, ru.anyPort, ru.ports, func() []*Pod {
		if d == Egress {
			return c.egressTargets(ru)
		}
		return r.subjects
	}, acl)
}

// portACLs emits a rule's ACLs through acl, each base && peer && a port term: "ip4" for
// any port, one ACL for the numbered ports, and, since a port name means a number per
// destination pod, one per number a name resolves to on targets (ingress: the subjects;
// egress: the rule's peers), over the destinations that give the name that number.
func portACLs(d Direction, base, peer string, anyPort bool, ports []portMatch, targets func() []*Pod, acl func(parts ...string)) {
	if anyPort {
		acl(base, peer, "ip4")
		return
	}
	var numbered []string
	named := map[portMatch]bool{}
	for _, m := range ports {
		if m.name != "" {
			named[portMatch{proto: m.proto, name: m.name}] = true
			continue
		}
		numbered = append(numbered, portTerm(m))
	}
	if len(numbered) > 0 {
		slices.Sort(numbered)
		acl(base, peer, "("+strings.Join(slices.Compact(numbered), " || ")+")")
	}
	for _, m := range sortedPorts(named) {
		byPortNumber(targets(), m, func(dst, term string) {
			if d == Ingress {
				acl(dst, peer, term)
			} else {
				acl(base, dst, term)
			}
		})
	}
}

// egressTargets are the pods an egress rule's named port resolves on: its peers.
func (c *compiler) egressTargets(ru *rule) []*Pod {
	if ru.anyPeer {
		out := make([]*Pod, 0, len(c.ps.ix.s.Pods))
		for i := range c.ps.ix.s.Pods {
			out = append(out, &c.ps.ix.s.Pods[i])
		}
		return out
	}
	out := slices.Clone(ru.pods)
	for i := range c.ps.ix.s.Pods {
		p := &c.ps.ix.s.Pods[i]
		if slices.Contains(out, p) {
			continue
		}
		for _, b := range ru.blocks {
			if b.contains(p.IP) {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

func portTerm(m portMatch) string {
	p := l4(m.proto)
	switch m.lo {
	case 0:
		return p
	case m.hi:
		return fmt.Sprintf("%s.dst == %d", p, m.lo)
	default:
		return fmt.Sprintf("(%s.dst >= %d && %s.dst <= %d)", p, m.lo, p, m.hi)
	}
}

func l4(p corev1.Protocol) string { return strings.ToLower(string(p)) }

func blockMatch(field string, b ipBlock) string {
	if len(b.except) == 0 {
		return field + " == " + b.cidr.String()
	}
	ex := make([]string, len(b.except))
	for i, e := range b.except {
		ex[i] = e.String()
	}
	return "(" + field + " == " + b.cidr.String() + " && " + field + " != {" + strings.Join(ex, ", ") + "})"
}

func addrList(a []netip.Addr) string {
	s := make([]string, len(a))
	for i, x := range a {
		s[i] = x.String()
	}
	return "{" + strings.Join(s, ", ") + "}"
}

func addrsOf(pods []*Pod) []netip.Addr {
	out := make([]netip.Addr, len(pods))
	for i, p := range pods {
		out[i] = p.IP
	}
	return out
}

func keys(m map[*Pod]bool) []netip.Addr {
	out := make([]netip.Addr, 0, len(m))
	for p := range m {
		out = append(out, p.IP)
	}
	return out
}

// byPortNumber calls emit, in number order, once for each number that targets give the
// port name m: with the match of the destinations that give it that number and the
// port term.
func byPortNumber(targets []*Pod, m portMatch, emit func(dst, term string)) {
	byNum := map[int32][]netip.Addr{}
	for _, p := range targets {
		if n := p.resolve(m.name, m.proto); n != 0 {
			byNum[n] = append(byNum[n], p.IP)
		}
	}
	nums := make([]int32, 0, len(byNum))
	for n := range byNum {
		nums = append(nums, n)
	}
	slices.Sort(nums)
	for _, n := range nums {
		addrs := slices.Clone(byNum[n])
		slices.SortFunc(addrs, func(x, y netip.Addr) int { return x.Compare(y) })
		emit("ip4.dst == "+addrList(addrs), fmt.Sprintf("%s.dst == %d", l4(m.proto), n))
	}
}

func sortedPorts(m map[portMatch]bool) []portMatch {
	out := make([]portMatch, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].proto != out[j].proto {
			return out[i].proto < out[j].proto
		}
		return out[i].name < out[j].name
	})
	return out
}

func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
