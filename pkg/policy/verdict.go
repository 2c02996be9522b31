package policy

import (
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
)

// Policies is a Snapshot with its policies read, ready to answer questions.
type Policies struct {
	ix       *index
	resolved []resolved
	// cluster are the ClusterNetworkPolicies in evaluation order (Admin before
	// Baseline, then by priority and name).
	cluster []clusterResolved
	byIP    map[netip.Addr]*Pod
	// Problems lists what could not be realised; the rest of each policy still holds.
	Problems []Problem
}

// Resolve reads the snapshot's policies. The snapshot must not change afterwards.
func Resolve(s *Snapshot) *Policies {
	ix := newIndex(s)
	res, problems := ix.resolveAll()
	cluster, cproblems := ix.resolveClusterAll()
	ps := &Policies{ix: ix, resolved: res, cluster: cluster, Problems: append(problems, cproblems...),
		byIP: make(map[netip.Addr]*Pod, len(s.Pods))}
	for i := range s.Pods {
		ps.byIP[s.Pods[i].IP] = &s.Pods[i]
	}
	return ps
}

// Governed reports whether any policy may decide the pod's traffic in direction d: a
// NetworkPolicy isolates it, or a ClusterNetworkPolicy with rules in d selects it. Traffic
// of a pod governed in neither direction is allowed whatever its peer.
func (ps *Policies) Governed(podKey string, d Direction) bool {
	if ps.Isolated(podKey, d) {
		return true
	}
	for i := range ps.cluster {
		c := &ps.cluster[i]
		if len(c.rules[d]) == 0 {
			continue
		}
		for p := range c.subjects {
			if p.Key() == podKey {
				return true
			}
		}
	}
	return false
}

// Isolated reports whether a NetworkPolicy isolates the pod (namespace/name) in
// direction d.
func (ps *Policies) Isolated(podKey string, d Direction) bool {
	for i := range ps.resolved {
		r := &ps.resolved[i]
		if r.types[d] && slices.ContainsFunc(r.subjects, func(p *Pod) bool { return p.Key() == podKey }) {
			return true
		}
	}
	return false
}

// Allowed is the reference semantics: whether a new connection (or datagram) from src to
// dst with protocol proto ("TCP", "UDP", "ICMP", …) and destination port may pass, both
// addresses in the VPN's address space. Addresses that are no pod of the VPN (outside,
// nodes) are governed only by the pod's side. The nodes' addresses may always reach pods.
//
// Each side is decided by the tiers in turn (src's egress, then dst's ingress; both must
// allow): the Admin tier's first matching rule (ClusterNetworkPolicies by priority, then
// rule order) accepts or denies, or passes or does not match; then the NetworkPolicies
// that isolate the pod decide; for a pod no NetworkPolicy isolates, the Baseline tier's
// first matching rule accepts or denies; everything else is allowed.
func (ps *Policies) Allowed(src, dst netip.Addr, proto corev1.Protocol, port int32) bool {
	srcPod, dstPod := ps.byIP[src], ps.byIP[dst]
	if srcPod != nil && !ps.tiered(Egress, srcPod, dst, dstPod, proto, port) {
		return false
	}
	if dstPod != nil && !slices.Contains(ps.ix.s.NodeAddrs, src) &&
		!ps.tiered(Ingress, dstPod, src, dstPod, proto, port) {
		return false
	}
	return true
}

func (ps *Policies) tiered(d Direction, subject *Pod, peer netip.Addr, dstPod *Pod, proto corev1.Protocol, port int32) bool {
	if a, ok := ps.clusterVerdict(Admin, d, subject, peer, dstPod, proto, port); ok && a != Pass {
		return a == Accept
	}
	if isolated, allowed := ps.allowedBy(d, subject, peer, dstPod, proto, port); isolated {
		return allowed
	}
	if a, ok := ps.clusterVerdict(Baseline, d, subject, peer, dstPod, proto, port); ok && a != Pass {
		return a == Accept
	}
	return true
}

// clusterVerdict is the action of the first rule of tier t that matches, if any.
func (ps *Policies) clusterVerdict(t Tier, d Direction, subject *Pod, peer netip.Addr, dstPod *Pod, proto corev1.Protocol, port int32) (Action, bool) {
	for i := range ps.cluster {
		c := &ps.cluster[i]
		if c.tier != t || !c.subjects[subject] {
			continue
		}
		for j := range c.rules[d] {
			ru := &c.rules[d][j]
			if ru.peerMatches(peer, ps.byIP[peer]) && portMatches(ru.anyPort, ru.ports, dstPod, proto, port) {
				return ru.action, true
			}
		}
	}
	return 0, false
}

// allowedBy is the NetworkPolicy tier: whether any policy isolates subject in direction
// d, and if so whether one of its rules allows the traffic. subject is the pod the
// direction d belongs to, peer the other end, dstPod the pod that resolves named ports
// (the destination, or nil).
func (ps *Policies) allowedBy(d Direction, subject *Pod, peer netip.Addr, dstPod *Pod, proto corev1.Protocol, port int32) (isolated, allowed bool) {
	for i := range ps.resolved {
		r := &ps.resolved[i]
		if !r.types[d] || !slices.Contains(r.subjects, subject) {
			continue
		}
		isolated = true
		for j := range r.rules[d] {
			if r.rules[d][j].matches(peer, ps.byIP[peer], dstPod, proto, port) {
				return true, true
			}
		}
	}
	return isolated, false
}

func (ru *rule) matches(peer netip.Addr, peerPod, dstPod *Pod, proto corev1.Protocol, port int32) bool {
	if ru.none {
		return false
	}
	if !ru.anyPeer {
		ok := peerPod != nil && slices.Contains(ru.pods, peerPod)
		for _, b := range ru.blocks {
			ok = ok || b.contains(peer)
		}
		if !ok {
			return false
		}
	}
	return portMatches(ru.anyPort, ru.ports, dstPod, proto, port)
}

// portMatches reports whether ports (or anyPort) hold proto/port; names resolve on
// dstPod.
func portMatches(anyPort bool, ports []portMatch, dstPod *Pod, proto corev1.Protocol, port int32) bool {
	if anyPort {
		return true
	}
	for _, m := range ports {
		if m.proto != proto {
			continue
		}
		switch {
		case m.name != "":
			// A name the destination does not give matches nothing (not port 0).
			if dstPod != nil && port != 0 && dstPod.resolve(m.name, proto) == port {
				return true
			}
		case m.lo == 0:
			return true
		case port >= m.lo && port <= m.hi:
			return true
		}
	}
	return false
}
