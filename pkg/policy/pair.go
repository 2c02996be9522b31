package policy

import (
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
)

// PortRange is a range of destination ports of one protocol, both ends included.
type PortRange struct {
	Protocol corev1.Protocol // TCP or UDP
	Lo, Hi   int32
}

// PairVerdict is what policy allows for new traffic from one address to another: All
// (every protocol and port, ICMP included), or TCP and UDP destination ports in Ranges
// (sorted by protocol and port, merged, disjoint), or nothing when Ranges is empty.
type PairVerdict struct {
	All    bool
	Ranges []PortRange
}

// None reports whether the verdict allows nothing.
func (v PairVerdict) None() bool { return !v.All && len(v.Ranges) == 0 }

// Allows reports whether the verdict allows proto to port.
func (v PairVerdict) Allows(proto corev1.Protocol, port int32) bool {
	if v.All {
		return true
	}
	return slices.ContainsFunc(v.Ranges, func(r PortRange) bool { return r.Protocol == proto && port >= r.Lo && port <= r.Hi })
}

// PairPorts is Allowed for every protocol and port at once: the intersection of what
// src's egress and dst's ingress allow from src to dst (a side that no policy governs,
// or an address that is no pod of the VPN, allows everything). For every TCP and UDP
// port p, PairPorts(src, dst).Allows(proto, p) == Allowed(src, dst, proto, p); All is
// set only when Allowed holds for every protocol and port (a verdict that allows ICMP
// but not every TCP and UDP port is given as its ranges: the fast path leaves ICMP to
// OVS).
//
// It depends only on src, dst, their namespaces and the policies: a Snapshot holding
// just the pods of one node gives the same verdicts for pairs of those pods as the
// VPN's full Snapshot.
func (ps *Policies) PairPorts(src, dst netip.Addr) PairVerdict {
	srcPod, dstPod := ps.byIP[src], ps.byIP[dst]
	out := allPorts()
	if srcPod != nil {
		out = out.intersect(ps.tieredSet(Egress, srcPod, dst, dstPod))
	}
	if dstPod != nil && !slices.Contains(ps.ix.s.NodeAddrs, src) {
		out = out.intersect(ps.tieredSet(Ingress, dstPod, src, dstPod))
	}
	return out.verdict()
}

// tieredSet is tiered for every protocol and port: it walks the rules in order, each
// deciding (or passing) what no earlier rule decided.
func (ps *Policies) tieredSet(d Direction, subject *Pod, peer netip.Addr, dstPod *Pod) portSet {
	peerPod := ps.byIP[peer]
	undecided := allPorts()
	var accepted portSet
	// tier runs tier t's rules over rest: what they accept joins accepted; what no rule
	// decides (or a rule passes) is returned.
	tier := func(t Tier, rest portSet) portSet {
		var passed portSet
		for i := range ps.cluster {
			c := &ps.cluster[i]
			if c.tier != t || !c.subjects[subject] {
				continue
			}
			for j := range c.rules[d] {
				ru := &c.rules[d][j]
				if !ru.peerMatches(peer, peerPod) {
					continue
				}
				m := rest.intersect(portsOf(ru.anyPort, ru.ports, dstPod))
				rest = rest.minus(m)
				switch ru.action {
				case Accept:
					accepted = accepted.union(m)
				case Pass:
					passed = passed.union(m)
				}
			}
		}
		return rest.union(passed)
	}
	undecided = tier(Admin, undecided)
	if isolated, allowed := ps.setBy(d, subject, peer, dstPod); isolated {
		return accepted.union(undecided.intersect(allowed))
	}
	undecided = tier(Baseline, undecided)
	return accepted.union(undecided) // what no tier decides is allowed
}

// setBy is allowedBy for every protocol and port.
func (ps *Policies) setBy(d Direction, subject *Pod, peer netip.Addr, dstPod *Pod) (isolated bool, allowed portSet) {
	for i := range ps.resolved {
		r := &ps.resolved[i]
		if !r.types[d] || !slices.Contains(r.subjects, subject) {
			continue
		}
		isolated = true
		for j := range r.rules[d] {
			allowed = allowed.union(r.rules[d][j].set(peer, ps.byIP[peer], dstPod))
		}
	}
	return isolated, allowed
}

// set is matches for every protocol and port.
func (ru *rule) set(peer netip.Addr, peerPod, dstPod *Pod) portSet {
	if ru.none || !ru.peerMatches(peer, peerPod) {
		return portSet{}
	}
	return portsOf(ru.anyPort, ru.ports, dstPod)
}

// portsOf is portMatches for every protocol and port.
func portsOf(anyPort bool, ports []portMatch, dstPod *Pod) portSet {
	if anyPort {
		return allPorts()
	}
	var out portSet
	for _, m := range ports {
		var r PortRange
		switch {
		case m.name != "":
			if dstPod == nil {
				continue
			}
			p := dstPod.resolve(m.name, m.proto)
			if p == 0 {
				continue
			}
			r = PortRange{Protocol: m.proto, Lo: p, Hi: p}
		case m.lo == 0:
			r = PortRange{Protocol: m.proto, Lo: 0, Hi: 65535}
		default:
			r = PortRange{Protocol: m.proto, Lo: m.lo, Hi: m.hi}
		}
		out = out.union(portSet{ranges: []PortRange{r}})
	}
	return out
}

// peerMatches is the peer half of matches.
func (ru *rule) peerMatches(peer netip.Addr, peerPod *Pod) bool {
	if ru.anyPeer {
		return true
	}
	if peerPod != nil && slices.Contains(ru.pods, peerPod) {
		return true
	}
	return slices.ContainsFunc(ru.blocks, func(b ipBlock) bool { return b.contains(peer) })
}

// portSet is a set of (protocol, port): TCP/UDP ranges kept normalised (sorted, merged,
// disjoint), and other, every packet of any other protocol (ICMP, …).
type portSet struct {
	other  bool
	ranges []PortRange
}

// allPorts is every protocol and port.
func allPorts() portSet {
	return portSet{other: true, ranges: []PortRange{{Protocol: "TCP", Lo: 0, Hi: 65535}, {Protocol: "UDP", Lo: 0, Hi: 65535}}}
}

func (s portSet) all() bool {
	a := allPorts()
	return s.other && slices.Equal(s.ranges, a.ranges)
}

func (s portSet) verdict() PairVerdict {
	if s.all() {
		return PairVerdict{All: true}
	}
	return PairVerdict{Ranges: s.ranges}
}

func (s portSet) union(o portSet) portSet {
	return portSet{other: s.other || o.other, ranges: normalise(append(slices.Clone(s.ranges), o.ranges...))}
}

func (s portSet) intersect(o portSet) portSet {
	var out []PortRange
	for _, a := range s.ranges {
		for _, b := range o.ranges {
			if a.Protocol != b.Protocol {
				continue
			}
			lo, hi := max(a.Lo, b.Lo), min(a.Hi, b.Hi)
			if lo <= hi {
				out = append(out, PortRange{Protocol: a.Protocol, Lo: lo, Hi: hi})
			}
		}
	}
	return portSet{other: s.other && o.other, ranges: normalise(out)}
}

// minus is s without o.
func (s portSet) minus(o portSet) portSet {
	out := slices.Clone(s.ranges)
	for _, b := range o.ranges {
		var next []PortRange
		for _, a := range out {
			if a.Protocol != b.Protocol || b.Hi < a.Lo || b.Lo > a.Hi {
				next = append(next, a)
				continue
			}
			if a.Lo < b.Lo {
				next = append(next, PortRange{Protocol: a.Protocol, Lo: a.Lo, Hi: b.Lo - 1})
			}
			if a.Hi > b.Hi {
				next = append(next, PortRange{Protocol: a.Protocol, Lo: b.Hi + 1, Hi: a.Hi})
			}
		}
		out = next
	}
	return portSet{other: s.other && !o.other, ranges: normalise(out)}
}

// normalise sorts ranges and merges those that overlap or touch.
func normalise(rs []PortRange) []PortRange {
	slices.SortFunc(rs, func(a, b PortRange) int {
		if a.Protocol != b.Protocol {
			if a.Protocol < b.Protocol {
				return -1
			}
			return 1
		}
		return int(a.Lo - b.Lo)
	})
	var out []PortRange
	for _, r := range rs {
		if n := len(out); n > 0 && out[n-1].Protocol == r.Protocol && r.Lo <= out[n-1].Hi+1 {
			out[n-1].Hi = max(out[n-1].Hi, r.Hi)
			continue
		}
		out = append(out, r)
	}
	return out
}
