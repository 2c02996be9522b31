//go:build linux

package datapath

import (
	"maps"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// ktimeNow is bpf_ktime_get_ns(): CLOCK_MONOTONIC.
func ktimeNow(t *testing.T) uint64 {
	t.Helper()
	var ts unix.Timespec
	require.NoError(t, unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts))
	return uint64(ts.Nano())
}

func be16(p uint16) uint16 { return ntohs(p) } // the swap is its own inverse

func clearPolicyMaps(t *testing.T, m *bpfMaps) {
	t.Helper()
	for _, mp := range []*ebpf.Map{m.SdncniPol, m.SdncniCt, m.SdncniSvc} {
		for {
			k := make([]byte, mp.KeySize())
			if err := mp.NextKey(nil, &k); err != nil {
				require.ErrorIs(t, err, ebpf.ErrKeyNotExist)
				break
			}
			require.NoError(t, mp.Delete(k))
		}
	}
}

// injectConn records a connection as the program would have admitted it.
func injectConn(t *testing.T, m *bpfMaps, vpn uint32, src netip.Addr, sport uint16, dst netip.Addr, dport uint16, proto uint8, srcIf, dstIf uint32, seen uint64) {
	t.Helper()
	k := bpfCtKey{Vpn: vpn, Saddr: be32(src), Daddr: be32(dst), Sport: be16(sport), Dport: be16(dport), Proto: proto}
	v := bpfCt{LastSeen: seen, SrcIfindex: srcIf, DstIfindex: dstIf}
	require.NoError(t, m.SdncniCt.Update(&k, &v, ebpf.UpdateAny))
}

// TestFromPodPolicy: from_pod between pods a NetworkPolicy governs. The sender A is on
// loopback (ifindex 1), B on ifindex 200, both in VPN 10; SetPolicy writes the flags
// and pair entries. Delivered only what the pair entry allows or what replies to a
// connection admitted here; everything else, and every non-TCP/UDP packet of a governed
// pair, goes to OVS (to_ovs_policy).
func TestFromPodPolicy(t *testing.T) {
	d, objs := loadTestObjects(t)
	m := &objs.bpfMaps
	tcp80 := []PortRange{{Protocol: "tcp", Lo: 80, Hi: 80}}
	toB := func(proto uint8, sport, dport uint16) frame {
		return frame{dstMAC: macB, srcMAC: macA, src: ipA, dst: ipB, proto: proto, sport: sport, dport: dport}
	}
	syn := func(f frame) frame { f.tcpFlags |= 0x02; return f }
	ack := func(f frame) frame { f.tcpFlags |= 0x10; return f }
	bIn := []PolicyEndpoint{{IP: ipA}, {IP: ipB, Ingress: true}}
	aEg := []PolicyEndpoint{{IP: ipA, Egress: true}, {IP: ipB}}
	aIn := []PolicyEndpoint{{IP: ipA, Ingress: true}, {IP: ipB}}
	type conn struct {
		vpn          uint32
		src, dst     netip.Addr
		sport, dport uint16
		srcIf, dstIf uint32
		age          uint64 // ns before now
	}
	// B (ifindex 200) opened B:5000 → A:8080; A's packet A:8080 → B:5000 is its reply.
	fromB := conn{vpn: 10, src: ipB, dst: ipA, sport: 5000, dport: 8080, srcIf: 200, dstIf: loIfindex}
	tests := []struct {
		name   string
		eps    []PolicyEndpoint
		pairs  []PolicyPair
		conns  []conn
		svc    []ServiceEndpoint
		frame  frame
		reason string
		// admitted: the connection recorded for the packet's own tuple.
		admitted bool
		// rebind: the pair entries name another veth for B (a later holder of its address).
		rebind bool
	}{
		{name: "pair entry of B's address on another veth", eps: bIn, pairs: []PolicyPair{{Src: ipA, Dst: ipB, All: true}}, rebind: true,
			frame: toB(6, 0, 80), reason: "to_ovs_policy"},
		{name: "allowed port", eps: bIn, pairs: []PolicyPair{{Src: ipA, Dst: ipB, Ranges: tcp80}}, frame: toB(6, 0, 80), reason: "redirect_fast", admitted: true},
		{name: "denied port", eps: bIn, pairs: []PolicyPair{{Src: ipA, Dst: ipB, Ranges: tcp80}}, frame: toB(6, 0, 81), reason: "to_ovs_policy"},
		{name: "allowed port, other protocol", eps: bIn, pairs: []PolicyPair{{Src: ipA, Dst: ipB, Ranges: tcp80}}, frame: toB(17, 0, 80), reason: "to_ovs_policy"},
		{name: "no pair entry", eps: bIn, frame: toB(6, 0, 80), reason: "to_ovs_policy"},
		{name: "egress by udp port", eps: aEg, pairs: []PolicyPair{{Src: ipA, Dst: ipB, Ranges: []PortRange{{Protocol: "udp", Lo: 53, Hi: 53}}}},
			frame: toB(17, 0, 53), reason: "redirect_fast", admitted: true},
		{name: "egress, tcp to the udp port", eps: aEg, pairs: []PolicyPair{{Src: ipA, Dst: ipB, Ranges: []PortRange{{Protocol: "udp", Lo: 53, Hi: 53}}}},
			frame: toB(6, 0, 53), reason: "to_ovs_policy"},
		{name: "all ports", eps: bIn, pairs: []PolicyPair{{Src: ipA, Dst: ipB, All: true}}, frame: toB(17, 0, 4444), reason: "redirect_fast", admitted: true},
		{name: "range low edge", eps: bIn, pairs: []PolicyPair{{Src: ipA, Dst: ipB, Ranges: []PortRange{{"udp", 9, 9}, {"tcp", 1000, 2000}}}}, frame: toB(6, 0, 1000), reason: "redirect_fast", admitted: true},
		{name: "range high edge", eps: bIn, pairs: []PolicyPair{{Src: ipA, Dst: ipB, Ranges: []PortRange{{"udp", 9, 9}, {"tcp", 1000, 2000}}}}, frame: toB(6, 0, 2000), reason: "redirect_fast", admitted: true},
		{name: "below the range", eps: bIn, pairs: []PolicyPair{{Src: ipA, Dst: ipB, Ranges: []PortRange{{"udp", 9, 9}, {"tcp", 1000, 2000}}}}, frame: toB(6, 0, 999), reason: "to_ovs_policy"},
		{name: "above the range", eps: bIn, pairs: []PolicyPair{{Src: ipA, Dst: ipB, Ranges: []PortRange{{"udp", 9, 9}, {"tcp", 1000, 2000}}}}, frame: toB(6, 0, 2001), reason: "to_ovs_policy"},
		{name: "eighth range", eps: bIn, pairs: []PolicyPair{{Src: ipA, Dst: ipB, Ranges: []PortRange{{"tcp", 1, 1}, {"tcp", 3, 3}, {"tcp", 5, 5}, {"tcp", 7, 7}, {"tcp", 9, 9}, {"tcp", 11, 11}, {"tcp", 13, 13}, {"tcp", 15, 15}}}},
			frame: toB(6, 0, 15), reason: "redirect_fast", admitted: true},
		{name: "the pair's other direction", eps: []PolicyEndpoint{{IP: ipA, Ingress: true}, {IP: ipB, Ingress: true}}, pairs: []PolicyPair{{Src: ipB, Dst: ipA, All: true}},
			frame: toB(6, 0, 80), reason: "to_ovs_policy"},
		{name: "reply of an admitted connection", eps: bIn, conns: []conn{fromB}, frame: toB(6, 8080, 5000), reason: "redirect_fast"},
		{name: "reply-looking, no connection", eps: bIn, frame: toB(6, 8080, 5000), reason: "to_ovs_policy"},
		{name: "reply, connection of another VPN", eps: bIn, conns: []conn{func() conn { c := fromB; c.vpn = 20; return c }()}, frame: toB(6, 8080, 5000), reason: "to_ovs_policy"},
		{name: "reply, connection of other endpoints", eps: bIn, conns: []conn{func() conn { c := fromB; c.srcIf = 999; return c }()}, frame: toB(6, 8080, 5000), reason: "to_ovs_policy"},
		{name: "reply, other port", eps: bIn, conns: []conn{fromB}, frame: toB(6, 8080, 5001), reason: "to_ovs_policy"},
		{name: "reply, other protocol", eps: bIn, conns: []conn{fromB}, frame: toB(17, 8080, 5000), reason: "to_ovs_policy"},
		{name: "reply, tcp connection idle for 7 h", eps: bIn, conns: []conn{func() conn { c := fromB; c.age = 7 * 3600e9; return c }()}, frame: toB(6, 8080, 5000), reason: "to_ovs_policy"},
		{name: "reply, tcp connection idle for 5 h", eps: bIn, conns: []conn{func() conn { c := fromB; c.age = 5 * 3600e9; return c }()}, frame: toB(6, 8080, 5000), reason: "redirect_fast"},
		{name: "icmp between governed pods", eps: bIn, pairs: []PolicyPair{{Src: ipA, Dst: ipB, All: true}}, frame: toB(1, 0, 0), reason: "to_ovs_policy"},
		{name: "icmp, sender's ingress governed", eps: aIn, frame: toB(1, 0, 0), reason: "to_ovs_policy"},
		{name: "receiver governed only the other way: SYN delivered and recorded", eps: aIn, frame: syn(toB(6, 0, 80)), reason: "redirect_fast", admitted: true},
		// A mid-connection packet there may be B's connection opened before the policy:
		// recording it would let B's packets pass as "replies".
		{name: "receiver governed only the other way: mid-connection tcp to OVS", eps: aIn, frame: ack(toB(6, 0, 80)), reason: "to_ovs_policy"},
		{name: "receiver governed only the other way: SYN-ACK to OVS", eps: aIn, frame: ack(syn(toB(6, 0, 80))), reason: "to_ovs_policy"},
		{name: "receiver governed only the other way: udp delivered and recorded", eps: aIn, frame: toB(17, 0, 53), reason: "redirect_fast", admitted: true},
		{name: "mid-connection tcp the pair entry allows: delivered and recorded", eps: bIn, pairs: []PolicyPair{{Src: ipA, Dst: ipB, Ranges: tcp80}},
			frame: ack(toB(6, 0, 80)), reason: "redirect_fast", admitted: true},
		{name: "ungoverned pair: tcp not recorded", eps: []PolicyEndpoint{{IP: ipA}, {IP: ipB}}, frame: toB(6, 0, 80), reason: "redirect_fast"},
		// A policy that comes later must know who started a UDP flow (no SYN tells).
		{name: "ungoverned pair: udp recorded", eps: []PolicyEndpoint{{IP: ipA}, {IP: ipB}}, frame: toB(17, 0, 53), reason: "redirect_fast", admitted: true},
		{name: "service endpoint first", eps: bIn, pairs: []PolicyPair{{Src: ipA, Dst: ipB, All: true}},
			svc: []ServiceEndpoint{{VPN: 10, IP: ipB, Port: 80, Protocol: "tcp"}}, frame: toB(6, 0, 80), reason: "to_ovs_service"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clearMaps(t, m)
			clearPolicyMaps(t, m)
			require.NoError(t, d.SetFastPath(t.Context(), true))
			mustWrite(t, m, epA, epB, epC, epD, epE)
			rep, err := d.SetPolicy(t.Context(), VPNPolicy{VPN: 10, Endpoints: tc.eps, Pairs: tc.pairs})
			require.NoError(t, err)
			require.Empty(t, rep.Missing)
			if tc.rebind {
				k := bpfPolKey{Vpn: 10, Src: be32(ipA), Dst: be32(ipB)}
				var v bpfPol
				require.NoError(t, m.SdncniPol.Lookup(&k, &v))
				v.DstIfindex = 999
				require.NoError(t, m.SdncniPol.Update(&k, &v, ebpf.UpdateExist))
			}
			now := ktimeNow(t)
			for _, c := range tc.conns {
				injectConn(t, m, c.vpn, c.src, c.sport, c.dst, c.dport, 6, c.srcIf, c.dstIf, now-c.age)
			}
			require.NoError(t, d.SetServiceEndpoints(t.Context(), tc.svc))
			before, err := d.Connections(t.Context())
			require.NoError(t, err)

			handoffs, err := d.PolicyHandoffs(t.Context())
			require.NoError(t, err)
			ret, _, moved := run(t, d, objs.SdncniFromPod, tc.frame.bytes())
			require.Equal(t, map[string]uint64{tc.reason: 1}, moved)
			require.Equal(t, uint32(tcActRedirect), ret)
			handoffsAfter, err := d.PolicyHandoffs(t.Context())
			require.NoError(t, err)
			want := maps.Clone(handoffs)
			if tc.reason == "to_ovs_policy" {
				want[10]++ // the sender's VPN
			}
			require.Equal(t, want, handoffsAfter, "policy hand-offs by VPN")

			after, err := d.Connections(t.Context())
			require.NoError(t, err)
			if !tc.admitted {
				require.Len(t, after, len(before), "no connection recorded")
				return
			}
			require.Len(t, after, len(before)+1)
			f := tc.frame
			sport, dport := f.sport, f.dport
			if sport == 0 {
				sport = 40000
			}
			var got *Connection
			for i := range after {
				if after[i].Src == netip.AddrPortFrom(ipA, sport) {
					got = &after[i]
				}
			}
			require.NotNil(t, got, "connection %v", after)
			proto := "tcp"
			if f.proto == 17 {
				proto = "udp"
			}
			require.Equal(t, Connection{VPN: 10, Src: netip.AddrPortFrom(ipA, sport), Dst: netip.AddrPortFrom(ipB, dport), Protocol: proto,
				SrcIf: loIfindex, DstIf: 200, LastSeenKtimeNs: got.LastSeenKtimeNs}, *got)
			require.InDelta(t, float64(ktimeNow(t)), float64(got.LastSeenKtimeNs), 5e9)
		})
	}
}

// TestPolicyJudgesUDPFlowsAgain: a UDP flow B opened to A before a policy isolated A's
// ingress is cut on the fast path: A's next datagram to B (the direction no policy
// governs) may no longer pass and open the way for B's as "replies". Without the flow's
// initiator kept across the policy change (a flush), A's datagram is recorded as a new
// flow of A's and delivered. The policy going away lets the flow run again; a TCP
// connection is flushed instead.
func TestPolicyJudgesUDPFlowsAgain(t *testing.T) {
	d, objs := loadTestObjects(t)
	m := &objs.bpfMaps
	clearMaps(t, m)
	clearPolicyMaps(t, m)
	require.NoError(t, d.SetFastPath(t.Context(), true))
	mustWrite(t, m, epA, epB)
	open := VPNPolicy{VPN: 10, Endpoints: []PolicyEndpoint{{IP: ipA}, {IP: ipB}}}
	_, err := d.SetPolicy(t.Context(), open)
	require.NoError(t, err)
	now := ktimeNow(t)
	injectConn(t, m, 10, ipB, 5000, ipA, 8080, 17, 200, loIfindex, now) // B:5000 → A:8080, udp
	injectConn(t, m, 10, ipB, 5001, ipA, 8081, 6, 200, loIfindex, now)  // the same over tcp
	reply := frame{dstMAC: macB, srcMAC: macA, src: ipA, dst: ipB, proto: 17, sport: 8080, dport: 5000}
	ret, _, moved := run(t, d, objs.SdncniFromPod, reply.bytes())
	require.Equal(t, uint32(tcActRedirect), ret)
	require.Equal(t, map[string]uint64{"redirect_fast": 1}, moved, "open: A's reply takes the fast path")

	// A's ingress is isolated and nothing admits B.
	rep, err := d.SetPolicy(t.Context(), VPNPolicy{VPN: 10, Endpoints: []PolicyEndpoint{{IP: ipA, Ingress: true}, {IP: ipB}}})
	require.NoError(t, err)
	require.Equal(t, 1, rep.Blocked, "the udp flow")
	require.Equal(t, 1, rep.Flushed, "the tcp connection")
	for range 2 {
		ret, _, moved = run(t, d, objs.SdncniFromPod, reply.bytes())
		require.Equal(t, uint32(tcActShot), ret)
		require.Equal(t, map[string]uint64{"drop_policy_blocked": 1}, moved, "A's datagram of B's blocked flow")
	}
	conns, err := d.Connections(t.Context())
	require.NoError(t, err)
	require.Len(t, conns, 1, "no flow of A's recorded: %v", conns)
	require.Equal(t, netip.AddrPortFrom(ipB, 5000), conns[0].Src)

	// Another flow of A's to B (not a reply) is A's own, and A's egress is free.
	fresh := reply
	fresh.sport = 9999
	ret, _, moved = run(t, d, objs.SdncniFromPod, fresh.bytes())
	require.Equal(t, uint32(tcActRedirect), ret)
	require.Equal(t, map[string]uint64{"redirect_fast": 1}, moved)

	// The policy goes: the flow runs again.
	rep, err = d.SetPolicy(t.Context(), open)
	require.NoError(t, err)
	require.Zero(t, rep.Blocked)
	ret, _, moved = run(t, d, objs.SdncniFromPod, reply.bytes())
	require.Equal(t, uint32(tcActRedirect), ret)
	require.Equal(t, map[string]uint64{"redirect_fast": 1}, moved)
}

// TestSetPolicy: the entries SetPolicy writes, what it removes, whose connections it
// flushes and when, and that a re-Attach keeps the flags of a governed pod.
func TestSetPolicy(t *testing.T) {
	d, objs := loadTestObjects(t)
	m := &objs.bpfMaps
	clearMaps(t, m)
	clearPolicyMaps(t, m)
	a, b := epA, epB
	a.FastPath, b.FastPath = false, false // as ADD leaves pods a policy selects
	mustWrite(t, m, a, b, epC, epD, epE)
	flags := func(ep Endpoint) [3]uint8 {
		var host, ovs bpfEndpoint
		var dst bpfDst
		require.NoError(t, m.SdncniEp.Lookup(uint32(ep.HostIfIndex), &host))
		require.NoError(t, m.SdncniEp.Lookup(uint32(ep.OVSIfIndex), &ovs))
		require.NoError(t, m.SdncniDst.Lookup(&bpfDstKey{Vpn: ep.VPN, Ip: be32(ep.IP)}, &dst))
		return [3]uint8{host.Flags, ovs.Flags, dst.Flags}
	}
	const fp, in, eg = uint8(bpfEpFlagEP_FASTPATH), uint8(bpfEpFlagEP_POLICY_IN), uint8(bpfEpFlagEP_POLICY_EG)
	tcp80 := []PortRange{{Protocol: "tcp", Lo: 80, Hi: 80}}
	pol := VPNPolicy{VPN: 10,
		Endpoints: []PolicyEndpoint{{IP: ipA, Egress: true}, {IP: ipB, Ingress: true}, {IP: unknown}},
		Pairs: []PolicyPair{{Src: ipA, Dst: ipB, Ranges: tcp80}, {Src: ipB, Dst: ipA, All: true},
			{Src: ipA, Dst: unknown, All: true}}}
	rep, err := d.SetPolicy(t.Context(), pol)
	require.NoError(t, err)
	require.Equal(t, []netip.Addr{unknown}, rep.Missing)
	require.Empty(t, rep.Changed, "the pods were off the fast path: no verdict of theirs changed")
	require.Equal(t, 1, rep.Pairs, "B → A is governed by neither side: not written")
	require.Equal(t, [3]uint8{fp | eg, fp | eg, fp | eg}, flags(a))
	require.Equal(t, [3]uint8{fp | in, fp | in, fp | in}, flags(b))
	pairs, err := d.PolicyPairs(t.Context(), 10)
	require.NoError(t, err)
	require.Equal(t, []PolicyPair{{Src: ipA, Dst: ipB, Ranges: tcp80}}, pairs)

	// Attach and Check of the same pod with the fast path off (what ADD/CHECK compute
	// for a selected pod) keep SetPolicy's flags.
	require.NoError(t, checkEntries(m, a))
	mustWrite(t, m, a)
	require.Equal(t, [3]uint8{fp | eg, fp | eg, fp | eg}, flags(a))
	// Another pod on a's interfaces (new MAC) gets its own flags.
	other := a
	other.MAC = macX
	require.Error(t, checkEntries(m, other))

	// Connections: one of A→B, one of an unrelated pair of VPN 10, one of VPN 20.
	now := ktimeNow(t)
	injectConn(t, m, 10, ipA, 40000, ipB, 80, 6, loIfindex, 200, now)
	injectConn(t, m, 10, ipE, 1, ipC, 2, 6, 500, 300, now)
	injectConn(t, m, 20, ipA, 40000, ipB, 80, 6, 300, 400, now)

	// Unchanged: nothing flushed.
	rep, err = d.SetPolicy(t.Context(), pol)
	require.NoError(t, err)
	require.Empty(t, rep.Changed)
	require.Zero(t, rep.Flushed)

	// A's egress verdict to B changes: connections of A and B in VPN 10 go.
	pol.Pairs[0].Ranges = []PortRange{{Protocol: "tcp", Lo: 81, Hi: 81}}
	rep, err = d.SetPolicy(t.Context(), pol)
	require.NoError(t, err)
	require.ElementsMatch(t, []netip.Addr{ipA, ipB}, rep.Changed)
	require.Equal(t, 1, rep.Flushed)
	conns, err := d.Connections(t.Context())
	require.NoError(t, err)
	require.Len(t, conns, 2)

	// B's isolation goes: flags, the pair entry stays (A's egress), B changed.
	pol.Endpoints[1].Ingress = false
	rep, err = d.SetPolicy(t.Context(), pol)
	require.NoError(t, err)
	require.Equal(t, []netip.Addr{ipB}, rep.Changed)
	require.Equal(t, [3]uint8{fp, fp, fp}, flags(b))

	// No policy: no pair entries, flags cleared, the fast path stays on.
	rep, err = d.SetPolicy(t.Context(), VPNPolicy{VPN: 10, Endpoints: []PolicyEndpoint{{IP: ipA}, {IP: ipB}}})
	require.NoError(t, err)
	require.ElementsMatch(t, []netip.Addr{ipA, ipB}, rep.Changed, "A's isolation and the pair entry A → B went")
	require.Equal(t, [3]uint8{fp, fp, fp}, flags(a))
	pairs, err = d.PolicyPairs(t.Context(), 10)
	require.NoError(t, err)
	require.Empty(t, pairs)

	// Off: the fast path goes, and too many ranges is an error that leaves the pods as
	// they were rather than on.
	rep, err = d.SetPolicy(t.Context(), VPNPolicy{VPN: 10, Off: []netip.Addr{ipA}})
	require.NoError(t, err)
	require.Equal(t, [3]uint8{0, 0, 0}, flags(a))
	many := make([]PortRange, MaxPairRanges+1)
	for i := range many {
		many[i] = PortRange{Protocol: "udp", Lo: uint16(i * 2), Hi: uint16(i * 2)}
	}
	_, err = d.SetPolicy(t.Context(), VPNPolicy{VPN: 10, Endpoints: []PolicyEndpoint{{IP: ipA, Egress: true}, {IP: ipB}},
		Pairs: []PolicyPair{{Src: ipA, Dst: ipB, Ranges: many}}})
	require.Error(t, err)
	require.Equal(t, [3]uint8{eg, eg, eg}, flags(a), "governed, but not switched on")
}
