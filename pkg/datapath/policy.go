//go:build linux

package datapath

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// MaxPairRanges is how many port ranges one pair entry holds; a pair whose verdict
// needs more gets no entry, and its governed traffic goes to OVS.
const MaxPairRanges = 8

// PolicyEndpoint is a pod of this node with what NetworkPolicy isolates of it.
type PolicyEndpoint struct {
	IP      netip.Addr
	Ingress bool // a policy isolates its ingress
	Egress  bool // a policy isolates its egress
}

// PortRange is a range of destination ports of one protocol ("tcp" or "udp").
type PortRange struct {
	Protocol string
	Lo, Hi   uint16
}

// PolicyPair is what policy allows for new traffic from Src to Dst: every TCP and UDP
// port (All), or the Ranges (at most MaxPairRanges). A pair that allows nothing needs
// no PolicyPair.
type PolicyPair struct {
	Src, Dst netip.Addr
	All      bool
	Ranges   []PortRange
}

// VPNPolicy is the NetworkPolicy state of one VPN's pods on this node.
type VPNPolicy struct {
	VPN uint32
	// Endpoints are the pods whose policy is known; they end on the fast path.
	Endpoints []PolicyEndpoint
	// Off are pods whose policy is not known: their fast path is switched off.
	Off []netip.Addr
	// Pairs are between Endpoints; those whose traffic neither side's isolation governs
	// (src's egress, dst's ingress) are not needed and not written.
	Pairs []PolicyPair
}

// PolicyReport says what SetPolicy did.
type PolicyReport struct {
	// Missing are Endpoints without datapath entries (not attached yet): nothing was
	// written for them, call again once they are.
	Missing []netip.Addr
	// Changed lists the endpoints whose verdicts changed while they were on the fast
	// path (their isolation, or an entry of a pair of two present endpoints changed or
	// went); their connections were judged again (see SetPolicy).
	Changed []netip.Addr
	// Pairs is the number of pair entries the VPN has now; Flushed the connections
	// removed from sdncni_ct, Blocked the UDP flows now marked blocked.
	Pairs, Flushed, Blocked int
}

// SetPolicy makes the datapath's policy state of p.VPN exactly p. In this order, so that
// every packet the fast path delivers meanwhile is allowed by the old or the new
// policy: the Off pods leave the fast path; pair entries are written; isolation flags
// are added (old ∪ new), then reduced to the new ones; stale pair entries are removed;
// the connections of endpoints whose verdicts changed are judged again (below); last
// the Endpoints' fast path is switched on. Entries are bound to the endpoints' host
// veths: an entry never holds for a later holder of one of its addresses.
//
// Judged again: a TCP connection is flushed (its next packets are judged as new: those
// the pair entries do not allow continue through OVS, whose conntrack has not seen the
// connection and drops a mid-connection packet). A UDP flow, which the fast path
// records from its first packet whatever the policy, keeps its initiator: it is
// unblocked when the new policy admits what the initiator sends, and marked CT_BLOCKED
// when it does not, so the other side's packets can no longer pass as replies.
func (d *Datapath) SetPolicy(ctx context.Context, p VPNPolicy) (PolicyReport, error) {
	var rep PolicyReport
	var errs []error
	for _, ip := range p.Off {
		if err := d.SetEndpointFastPath(ctx, p.VPN, ip, false); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, err)
		}
	}

	// Present endpoints: host ifindex and flags now.
	type present struct {
		ifindex uint32
		flags   uint8
		want    uint8
	}
	eps := map[netip.Addr]*present{}
	byIfindex := map[uint32]netip.Addr{}
	for _, e := range p.Endpoints {
		var dst bpfDst
		if err := d.objs.SdncniDst.Lookup(&bpfDstKey{Vpn: p.VPN, Ip: be32(e.IP)}, &dst); err != nil {
			rep.Missing = append(rep.Missing, e.IP)
			continue
		}
		var want uint8
		if e.Ingress {
			want |= uint8(bpfEpFlagEP_POLICY_IN)
		}
		if e.Egress {
			want |= uint8(bpfEpFlagEP_POLICY_EG)
		}
		eps[e.IP] = &present{ifindex: dst.HostIfindex, flags: dst.Flags, want: want}
		byIfindex[dst.HostIfindex] = e.IP
	}

	want := map[bpfPolKey]bpfPol{}
	for _, pp := range p.Pairs {
		s, d := eps[pp.Src], eps[pp.Dst]
		if s == nil || d == nil || pp.Src == pp.Dst {
			continue
		}
		if s.want&uint8(bpfEpFlagEP_POLICY_EG) == 0 && d.want&uint8(bpfEpFlagEP_POLICY_IN) == 0 {
			continue // never consulted
		}
		v, err := pairValue(pp, s.ifindex, d.ifindex)
		if err != nil {
			errs = append(errs, err) // no entry: its traffic goes to OVS
			continue
		}
		want[bpfPolKey{Vpn: p.VPN, Src: be32(pp.Src), Dst: be32(pp.Dst)}] = v
	}
	have, err := d.pairEntries(p.VPN)
	if err != nil {
		return rep, errors.Join(append(errs, err)...)
	}
	changed := map[netip.Addr]bool{}
	// A pair entry of two endpoints still present changed: a verdict changed.
	touch := func(v bpfPol) {
		s, okS := byIfindex[v.SrcIfindex]
		d, okD := byIfindex[v.DstIfindex]
		if okS && okD {
			changed[s], changed[d] = true, true
		}
	}
	for k, v := range want {
		old, had := have[k]
		if had && old == v {
			continue
		}
		if err := d.objs.SdncniPol.Update(&k, &v, ebpf.UpdateAny); err != nil {
			errs = append(errs, fmt.Errorf("write pair entry %s → %s: %w", addrFromBE32(k.Src), addrFromBE32(k.Dst), err))
			continue
		}
		if had {
			touch(old)
		}
	}

	// Isolation: first old ∪ new, then new.
	for _, phase := range []func(cur, want uint8) uint8{
		func(cur, want uint8) uint8 { return cur | want },
		func(cur, want uint8) uint8 { return cur&^policyFlags | want },
	} {
		for ip, e := range eps {
			set := func(cur uint8) uint8 { return phase(cur, e.want) }
			if err := d.updateFlags(p.VPN, ip, set, false); err != nil {
				errs = append(errs, fmt.Errorf("set policy flags of %d/%s: %w", p.VPN, ip, err))
			}
		}
	}
	for ip, e := range eps {
		if e.flags&policyFlags != e.want && e.flags&uint8(bpfEpFlagEP_FASTPATH) != 0 {
			changed[ip] = true
		}
	}

	for k, old := range have {
		if _, keep := want[k]; keep {
			continue
		}
		if err := d.objs.SdncniPol.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("remove pair entry %s → %s: %w", addrFromBE32(k.Src), addrFromBE32(k.Dst), err))
			continue
		}
		touch(old)
	}
	rep.Pairs = len(want)

	if len(changed) > 0 {
		for ip := range changed {
			rep.Changed = append(rep.Changed, ip)
		}
		// admits: what the new policy says of what k's initiator sends; known is false
		// when k is not between two present endpoints on their current veths.
		admits := func(k bpfCtKey, v bpfCt) (admitted, known bool) {
			s, d := eps[addrFromBE32(k.Saddr)], eps[addrFromBE32(k.Daddr)]
			if s == nil || d == nil || s.ifindex != v.SrcIfindex || d.ifindex != v.DstIfindex {
				return false, false
			}
			if s.want&uint8(bpfEpFlagEP_POLICY_EG) == 0 && d.want&uint8(bpfEpFlagEP_POLICY_IN) == 0 {
				return true, true
			}
			pe, ok := want[bpfPolKey{Vpn: p.VPN, Src: k.Saddr, Dst: k.Daddr}]
			return ok && pe.admits(k.Proto, ntohs(k.Dport)), true
		}
		flushed, blocked, err := d.rejudgeConnections(p.VPN, func(k bpfCtKey) bool {
			return changed[addrFromBE32(k.Saddr)] || changed[addrFromBE32(k.Daddr)]
		}, admits)
		rep.Flushed, rep.Blocked = flushed, blocked
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		// Not switched on: what failed may be an entry these pods need.
		return rep, fmt.Errorf("set policy of vpn %d: %w", p.VPN, errors.Join(errs...))
	}
	for ip := range eps {
		if err := d.SetEndpointFastPath(ctx, p.VPN, ip, true); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return rep, fmt.Errorf("set policy of vpn %d: %w", p.VPN, err)
	}
	return rep, nil
}

func pairValue(pp PolicyPair, src, dst uint32) (bpfPol, error) {
	v := bpfPol{SrcIfindex: src, DstIfindex: dst}
	if pp.All {
		v.All = 1
		return v, nil
	}
	if len(pp.Ranges) > MaxPairRanges {
		return v, fmt.Errorf("pair %s → %s: %d port ranges, room for %d", pp.Src, pp.Dst, len(pp.Ranges), MaxPairRanges)
	}
	for i, r := range pp.Ranges {
		proto, err := protoNumber(r.Protocol)
		if err != nil || r.Lo > r.Hi {
			return v, fmt.Errorf("pair %s → %s: bad range %+v", pp.Src, pp.Dst, r)
		}
		v.Ranges[i] = bpfPolRange{Proto: proto, Lo: r.Lo, Hi: r.Hi}
	}
	v.N = uint8(len(pp.Ranges))
	return v, nil
}

func protoNumber(p string) (uint8, error) {
	switch p {
	case "tcp":
		return 6, nil
	case "udp":
		return 17, nil
	}
	return 0, fmt.Errorf("protocol %q", p)
}

// pairEntries returns the pair entries of vpn.
func (d *Datapath) pairEntries(vpn uint32) (map[bpfPolKey]bpfPol, error) {
	out := map[bpfPolKey]bpfPol{}
	var (
		k bpfPolKey
		v bpfPol
	)
	it := d.objs.SdncniPol.Iterate()
	for it.Next(&k, &v) {
		if k.Vpn == vpn {
			out[k] = v
		}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list pair entries: %w", err)
	}
	return out, nil
}

// PolicyPairs lists the pair entries of vpn (for tests and diagnostics).
func (d *Datapath) PolicyPairs(ctx context.Context, vpn uint32) ([]PolicyPair, error) {
	have, err := d.pairEntries(vpn)
	if err != nil {
		return nil, err
	}
	out := make([]PolicyPair, 0, len(have))
	for k, v := range have {
		pp := PolicyPair{Src: addrFromBE32(k.Src), Dst: addrFromBE32(k.Dst), All: v.All != 0}
		for _, r := range v.Ranges[:min(int(v.N), MaxPairRanges)] {
			proto := "tcp"
			if r.Proto == 17 {
				proto = "udp"
			}
			pp.Ranges = append(pp.Ranges, PortRange{Protocol: proto, Lo: r.Lo, Hi: r.Hi})
		}
		out = append(out, pp)
	}
	return out, nil
}

// Connection is an entry of sdncni_ct: a connection the fast path admitted between
// governed pods, as its first packet saw it.
type Connection struct {
	VPN             uint32
	Src, Dst        netip.AddrPort
	Protocol        string
	SrcIf, DstIf    uint32 // host veths
	LastSeenKtimeNs uint64
}

// Connections lists sdncni_ct (for tests and diagnostics).
func (d *Datapath) Connections(ctx context.Context) ([]Connection, error) {
	var (
		k   bpfCtKey
		v   bpfCt
		out []Connection
	)
	it := d.objs.SdncniCt.Iterate()
	for it.Next(&k, &v) {
		proto := "tcp"
		if k.Proto == 17 {
			proto = "udp"
		}
		out = append(out, Connection{VPN: k.Vpn, Protocol: proto, SrcIf: v.SrcIfindex, DstIf: v.DstIfindex, LastSeenKtimeNs: v.LastSeen,
			Src: netip.AddrPortFrom(addrFromBE32(k.Saddr), ntohs(k.Sport)), Dst: netip.AddrPortFrom(addrFromBE32(k.Daddr), ntohs(k.Dport))})
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list connections: %w", err)
	}
	return out, nil
}

// ntohs reads a port the programs hold in network order.
func ntohs(v uint16) uint16 {
	var b [2]byte
	binary.NativeEndian.PutUint16(b[:], v)
	return binary.BigEndian.Uint16(b[:])
}

// rejudgeConnections judges the connections of vpn that match again (SetPolicy): TCP
// ones and those admits does not know are removed; UDP ones are marked blocked or
// unblocked as admits says. It returns how many it removed and how many are blocked.
func (d *Datapath) rejudgeConnections(vpn uint32, match func(bpfCtKey) bool,
	admits func(bpfCtKey, bpfCt) (admitted, known bool)) (flushed, blocked int, err error) {
	type conn struct {
		k bpfCtKey
		v bpfCt
	}
	var (
		k     bpfCtKey
		v     bpfCt
		found []conn
	)
	it := d.objs.SdncniCt.Iterate()
	for it.Next(&k, &v) {
		if k.Vpn == vpn && match(k) {
			found = append(found, conn{k, v})
		}
	}
	if ierr := it.Err(); ierr != nil {
		err = fmt.Errorf("list connections: %w", ierr)
	}
	for _, c := range found {
		admitted, known := admits(c.k, c.v)
		if c.k.Proto != unix.IPPROTO_UDP || !known {
			if derr := d.objs.SdncniCt.Delete(&c.k); derr != nil && !errors.Is(derr, ebpf.ErrKeyNotExist) {
				err = errors.Join(err, fmt.Errorf("flush connection: %w", derr))
				continue
			}
			flushed++
			continue
		}
		nv := c.v
		nv.Flags &^= uint32(bpfCtFlagCT_BLOCKED)
		if !admitted {
			nv.Flags |= uint32(bpfCtFlagCT_BLOCKED)
			blocked++
		}
		if nv == c.v {
			continue
		}
		// UpdateExist: a flow that idled out of the LRU meanwhile stays gone.
		if uerr := d.objs.SdncniCt.Update(&c.k, &nv, ebpf.UpdateExist); uerr != nil && !errors.Is(uerr, ebpf.ErrKeyNotExist) {
			err = errors.Join(err, fmt.Errorf("judge connection: %w", uerr))
		}
	}
	return flushed, blocked, err
}

// admits reports whether the pair entry allows proto to port.
func (v *bpfPol) admits(proto uint8, port uint16) bool {
	if v.All != 0 {
		return true
	}
	for i := 0; i < int(v.N) && i < len(v.Ranges); i++ {
		if r := v.Ranges[i]; r.Proto == proto && port >= r.Lo && port <= r.Hi {
			return true
		}
	}
	return false
}

// FlushConnections removes every connection of vpn from sdncni_ct: their next packets
// are judged anew (reply or pair entry, otherwise OVS).
func (d *Datapath) FlushConnections(ctx context.Context, vpn uint32) (int, error) {
	n, _, err := d.rejudgeConnections(vpn, func(bpfCtKey) bool { return true },
		func(bpfCtKey, bpfCt) (bool, bool) { return false, false }) // none known: all removed
	return n, err
}
