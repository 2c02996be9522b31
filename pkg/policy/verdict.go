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
	byIP     map[netip.Addr]*Pod
	// Problems lists what could not be realised; the rest of each policy still holds.
	Problems []Problem
}

// Resolve reads the snapshot's policies. The snapshot must not change afterwards.
func Resolve(s *Snapshot) *Policies {
	ix := newIndex(s)
	res, problems := ix.resolveAll()
	ps := &Policies{ix: ix, resolved: res, Problems: problems, byIP: make(map[netip.Addr]*Pod, len(s.Pods))}
	for i := range s.Pods {
		ps.byIP[s.Pods[i].IP] = &s.Pods[i]
	}
	return ps
}

// Isolated reports whether a policy isolates the pod (namespace/name) in direction d.
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
func (ps *Policies) Allowed(src, dst netip.Addr, proto corev1.Protocol, port int32) bool {
	srcPod, dstPod := ps.byIP[src], ps.byIP[dst]
	if srcPod != nil && !ps.allowedBy(Egress, srcPod, dst, dstPod, proto, port) {
		return false
	}
	if dstPod != nil && !slices.Contains(ps.ix.s.NodeAddrs, src) &&
		!ps.allowedBy(Ingress, dstPod, src, dstPod, proto, port) {
		return false
	}
	return true
}

// allowedBy: subject is the pod the direction d belongs to, peer the other end, dstPod
// the pod that resolves named ports (the destination, or nil).
func (ps *Policies) allowedBy(d Direction, subject *Pod, peer netip.Addr, dstPod *Pod, proto corev1.Protocol, port int32) bool {
	isolated := false
	for i := range ps.resolved {
		r := &ps.resolved[i]
		if !r.types[d] || !slices.Contains(r.subjects, subject) {
			continue
		}
		isolated = true
		for j := range r.rules[d] {
			if r.rules[d][j].matches(peer, ps.byIP[peer], dstPod, proto, port) {
				return true
			}
		}
	}
	return !isolated
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
	if ru.anyPort {
		return true
	}
	for _, m := range ru.ports {
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
