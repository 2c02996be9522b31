//go:build linux

package datapath

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/stretchr/testify/require"
)

var (
	// A remote pod of VPN 10 in node2's block, with the MAC sdncni gives it.
	ipR       = netip.MustParseAddr("10.0.1.7")
	macR      = net.HardwareAddr{0x0a, 0x58, 10, 0, 1, 7}
	node1     = netip.MustParseAddr("100.65.0.1")
	node2     = netip.MustParseAddr("100.65.0.2")
	vxlanTest = uint32(4242)
)

// setXnode writes the cross-node switch directly (SetCrossNode needs a real device).
func setXnode(t *testing.T, m *bpfMaps, on bool) {
	t.Helper()
	v := bpfXnode{VxlanIfindex: vxlanTest, Local: be32(node1)}
	if on {
		v.On = 1
	}
	require.NoError(t, m.SdncniXnode.Update(uint32(0), &v, ebpf.UpdateAny))
}

// TestFromPodCrossNode: a same-VPN packet to another node's block of the sender's VPN
// is encapsulated (VNI = VPN, remote = the block's node) and redirected to the VXLAN
// device; everything the cross-node path may not carry goes to OVS as before.
func TestFromPodCrossNode(t *testing.T) {
	d, objs := loadTestObjects(t)
	m := &objs.bpfMaps
	good := frame{dstMAC: macR, srcMAC: macA, src: ipA, dst: ipR}
	with := func(mod func(*frame)) frame { f := good; mod(&f); return f }
	remote := []RemoteBlock{
		{VPN: 10, Block: netip.MustParsePrefix("10.0.1.0/24"), Node: node2},
		// VPN 20 has the same block on node1 itself: never remote.
		{VPN: 20, Block: netip.MustParsePrefix("10.0.1.0/24"), Node: node1},
	}
	tests := []struct {
		name   string
		frame  frame
		setup  func(t *testing.T)
		reason string
	}{
		{name: "remote pod", frame: good, reason: "xnode_tx"},
		{name: "remote pod, udp", frame: with(func(f *frame) { f.proto = 17 }), reason: "xnode_tx"},
		{name: "remote pod, icmp", frame: with(func(f *frame) { f.proto = 1 }), reason: "xnode_tx"},
		{name: "path off", frame: good, setup: func(t *testing.T) { setXnode(t, m, false) }, reason: "to_ovs_cross_vpn_or_unknown_dst"},
		{name: "fast path off globally", frame: good, setup: func(t *testing.T) {
			require.NoError(t, d.SetFastPath(t.Context(), false))
		}, reason: "to_ovs_fastpath_off"},
		{name: "vpn fast path off", frame: good, setup: func(t *testing.T) {
			require.NoError(t, d.SetVPNFastPath(t.Context(), 10, false))
		}, reason: "to_ovs_fastpath_off"},
		{name: "vpn has no remote blocks", frame: good, setup: func(t *testing.T) {
			require.NoError(t, d.SetRemoteBlocks(t.Context(), remote[1:]))
		}, reason: "to_ovs_cross_vpn_or_unknown_dst"},
		{name: "address outside every block", frame: with(func(f *frame) {
			f.dst, f.dstMAC = netip.MustParseAddr("10.0.2.7"), net.HardwareAddr{0x0a, 0x58, 10, 0, 2, 7}
		}), reason: "to_ovs_cross_vpn_or_unknown_dst"},
		{name: "block of this node", frame: frame{dstMAC: macR, srcMAC: macC, src: ipC, dst: ipR},
			setup: func(t *testing.T) { asSender(t, d, epC) }, reason: "to_ovs_cross_vpn_or_unknown_dst"},
		{name: "gateway MAC", frame: with(func(f *frame) { f.dstMAC = macX }), reason: "to_ovs_dst_mac_mismatch"},
		{name: "MAC of another address", frame: with(func(f *frame) { f.dstMAC = net.HardwareAddr{0x0a, 0x58, 10, 0, 1, 8} }), reason: "to_ovs_dst_mac_mismatch"},
		{name: "spoofed source IP", frame: with(func(f *frame) { f.src = unknown }), reason: "to_ovs_spoofed"},
		{name: "spoofed source MAC", frame: with(func(f *frame) { f.srcMAC = macX }), reason: "to_ovs_spoofed"},
		{name: "ARP", frame: with(func(f *frame) { f.etherType = 0x0806 }), reason: "to_ovs_not_ipv4"},
		{name: "fragment", frame: with(func(f *frame) { f.fragOff = 0x2000 }), reason: "to_ovs_fragment"},
		{name: "broadcast", frame: with(func(f *frame) { f.dstMAC = bcast }), reason: "to_ovs_not_unicast"},
		{name: "governed sender", frame: good, setup: func(t *testing.T) {
			require.NoError(t, d.objs.SdncniEp.Update(uint32(loIfindex), governed(t, m, loIfindex), ebpf.UpdateAny))
		}, reason: "to_ovs_policy"},
		{name: "from a Service endpoint's port", frame: good, setup: func(t *testing.T) {
			require.NoError(t, d.SetServiceEndpoints(t.Context(), []ServiceEndpoint{{VPN: 10, IP: ipA, Port: 40000, Protocol: "tcp"}}))
		}, reason: "to_ovs_service"},
		{name: "vpn beyond 24 bits", frame: good, setup: func(t *testing.T) {
			a := epA
			a.VPN = MaxVNI + 1
			mustWrite(t, m, a)
		}, reason: "to_ovs_cross_vpn_or_unknown_dst"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearMaps(t, m)
			require.NoError(t, d.SetFastPath(t.Context(), true))
			require.NoError(t, d.SetServiceEndpoints(t.Context(), nil))
			mustWrite(t, m, epA, epB, epC)
			setXnode(t, m, true)
			require.NoError(t, d.SetRemoteBlocks(t.Context(), remote))
			if tt.setup != nil {
				tt.setup(t)
			}
			in := tt.frame.bytes()
			ret, out, moved := run(t, d, objs.SdncniFromPod, in)
			require.Equal(t, map[string]uint64{tt.reason: 1}, moved)
			require.Equal(t, uint32(tcActRedirect), ret)
			require.Equal(t, in, out, "the program never rewrites the inner frame")
		})
	}
}

// TestFromPodSentBack: a flow that its receiver sent back (an entry in sdncni_xback, as
// xnode_to_ovs writes it) goes to OVS at once while it is fresh, and the entry is
// refreshed at most once a second; another flow of the same pods, and the same flow once
// it idled 10 s, take VXLAN again. What decides before it (policy) still does.
func TestFromPodSentBack(t *testing.T) {
	d, objs := loadTestObjects(t)
	m := &objs.bpfMaps
	tcp := frame{dstMAC: macR, srcMAC: macA, src: ipA, dst: ipR}
	with := func(mod func(*frame)) frame { f := tcp; mod(&f); return f }
	flow := func(proto uint8, sport, dport uint16) bpfCtKey {
		return bpfCtKey{Vpn: 10, Saddr: be32(ipA), Daddr: be32(ipR), Sport: be16(sport), Dport: be16(dport), Proto: proto}
	}
	tests := []struct {
		name    string
		frame   frame
		key     bpfCtKey
		age     time.Duration // of the entry
		reason  string
		refresh bool // the entry's time moves to now
	}{
		{name: "tcp flow sent back", frame: tcp, key: flow(6, 40000, 80), age: 100 * time.Millisecond, reason: "to_ovs_xnode_sent_back"},
		{name: "refreshed after a second", frame: tcp, key: flow(6, 40000, 80), age: 3 * time.Second, reason: "to_ovs_xnode_sent_back", refresh: true},
		{name: "idle 10 s", frame: tcp, key: flow(6, 40000, 80), age: 11 * time.Second, reason: "xnode_tx"},
		{name: "another source port", frame: with(func(f *frame) { f.sport = 40001 }), key: flow(6, 40000, 80), age: time.Second, reason: "xnode_tx"},
		{name: "udp, same ports", frame: with(func(f *frame) { f.proto = 17 }), key: flow(6, 40000, 80), age: time.Second, reason: "xnode_tx"},
		{name: "udp flow sent back", frame: with(func(f *frame) { f.proto = 17 }), key: flow(17, 40000, 80), age: 500 * time.Millisecond, reason: "to_ovs_xnode_sent_back"},
		{name: "icmp, no ports", frame: with(func(f *frame) { f.proto = 1 }), key: flow(1, 0, 0), age: 500 * time.Millisecond, reason: "to_ovs_xnode_sent_back"},
		{name: "the other VPN's flow", frame: tcp, key: func() bpfCtKey { k := flow(6, 40000, 80); k.Vpn = 20; return k }(), age: time.Second, reason: "xnode_tx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearMaps(t, m)
			require.NoError(t, d.SetFastPath(t.Context(), true))
			mustWrite(t, m, epA, epB, epC)
			setXnode(t, m, true)
			require.NoError(t, d.SetRemoteBlocks(t.Context(), []RemoteBlock{{VPN: 10, Block: netip.MustParsePrefix("10.0.1.0/24"), Node: node2}}))
			at := ktimeNow(t) - uint64(tt.age)
			require.NoError(t, m.SdncniXback.Update(&tt.key, at, ebpf.UpdateAny))
			_, _, moved := run(t, d, objs.SdncniFromPod, tt.frame.bytes())
			require.Equal(t, map[string]uint64{tt.reason: 1}, moved)
			var got uint64
			require.NoError(t, m.SdncniXback.Lookup(&tt.key, &got))
			if tt.refresh {
				require.InDelta(t, float64(ktimeNow(t)), float64(got), float64(time.Second))
			} else {
				require.Equal(t, at, got, "entry not refreshed")
			}
		})
	}
	t.Run("policy decides first", func(t *testing.T) {
		clearMaps(t, m)
		mustWrite(t, m, epA, epB, epC)
		setXnode(t, m, true)
		require.NoError(t, d.objs.SdncniEp.Update(uint32(loIfindex), governed(t, m, loIfindex), ebpf.UpdateAny))
		k := flow(6, 40000, 80)
		require.NoError(t, m.SdncniXback.Update(&k, ktimeNow(t), ebpf.UpdateAny))
		_, _, moved := run(t, d, objs.SdncniFromPod, tcp.bytes())
		require.Equal(t, map[string]uint64{"to_ovs_policy": 1}, moved)
	})
}

// governed returns the endpoint entry at ifindex with a policy flag added.
func governed(t *testing.T, m *bpfMaps, ifindex uint32) *bpfEndpoint {
	t.Helper()
	var e bpfEndpoint
	require.NoError(t, m.SdncniEp.Lookup(ifindex, &e))
	e.Flags |= uint8(bpfEpFlagEP_POLICY_IN)
	return &e
}

// TestFromVXLANWithoutTunnel: BPF_PROG_TEST_RUN gives a packet no tunnel metadata, so
// only from_vxlan's refusals are reachable here (the deliveries and the VNI, source and
// policy checks are covered with real VXLAN devices in test/e2e): off, or on a device
// that is not the configured one, it drops as off; on, a packet without a tunnel key is
// malformed. It never passes anything on.
func TestFromVXLANWithoutTunnel(t *testing.T) {
	d, objs := loadTestObjects(t)
	m := &objs.bpfMaps
	clearMaps(t, m)
	mustWrite(t, m, epB)
	in := frame{dstMAC: macB, srcMAC: macR, src: ipR, dst: ipB}.bytes()
	require.NoError(t, d.SetRemoteBlocks(t.Context(), []RemoteBlock{{VPN: 10, Block: netip.MustParsePrefix("10.0.1.0/24"), Node: node2}}))

	ret, _, moved := run(t, d, objs.SdncniFromVxlan, in) // a new map: off
	require.Equal(t, uint32(tcActShot), ret)
	require.Equal(t, map[string]uint64{"xnode_drop_off": 1}, moved)

	setXnode(t, m, true) // on, but for ifindex vxlanTest, not loopback
	ret, _, moved = run(t, d, objs.SdncniFromVxlan, in)
	require.Equal(t, uint32(tcActShot), ret)
	require.Equal(t, map[string]uint64{"xnode_drop_off": 1}, moved)

	v := bpfXnode{On: 1, VxlanIfindex: loIfindex, Local: be32(node1)}
	require.NoError(t, m.SdncniXnode.Update(uint32(0), &v, ebpf.UpdateAny))
	ret, _, moved = run(t, d, objs.SdncniFromVxlan, in)
	require.Equal(t, uint32(tcActShot), ret)
	require.Equal(t, map[string]uint64{"xnode_drop_malformed": 1}, moved)
}

// TestRemoteBlocks: SetRemoteBlocks makes the map exact, refuses what the path cannot
// carry, and an LPM lookup finds the longest block.
func TestRemoteBlocks(t *testing.T) {
	d, objs := loadTestObjects(t)
	a := RemoteBlock{VPN: 10, Block: netip.MustParsePrefix("10.0.1.0/24"), Node: node2}
	b := RemoteBlock{VPN: 10, Block: netip.MustParsePrefix("10.0.1.64/26"), Node: netip.MustParseAddr("100.65.0.3")}
	c := RemoteBlock{VPN: 20, Block: netip.MustParsePrefix("10.0.1.0/24"), Node: node1}
	require.NoError(t, d.SetRemoteBlocks(t.Context(), []RemoteBlock{a, b, c}))
	got, err := d.RemoteBlocks(t.Context())
	require.NoError(t, err)
	require.ElementsMatch(t, []RemoteBlock{a, b, c}, got)

	lookup := func(vpn uint32, ip string) netip.Addr {
		k := bpfRemoteKey{Prefixlen: 64, Vpn: vpn, Ip: be32(netip.MustParseAddr(ip))}
		var v bpfRemote
		if objs.SdncniRemote.Lookup(&k, &v) != nil {
			return netip.Addr{}
		}
		return addrFromBE32(v.Underlay)
	}
	require.Equal(t, node2, lookup(10, "10.0.1.7"))
	require.Equal(t, b.Node, lookup(10, "10.0.1.70"))
	require.Equal(t, node1, lookup(20, "10.0.1.70"))
	require.False(t, lookup(30, "10.0.1.7").IsValid(), "another VPN's block never matches")

	// A flow sent back is kept while the blocks stay, forgotten when one goes.
	sent := bpfCtKey{Vpn: 10, Saddr: be32(ipA), Daddr: be32(netip.MustParseAddr("10.0.1.7")), Proto: 1}
	require.NoError(t, objs.SdncniXback.Update(&sent, ktimeNow(t), ebpf.UpdateAny))
	require.NoError(t, d.SetRemoteBlocks(t.Context(), []RemoteBlock{c, b, a}))
	var at uint64
	require.NoError(t, objs.SdncniXback.Lookup(&sent, &at), "same blocks: the flow is kept")

	require.NoError(t, d.SetRemoteBlocks(t.Context(), []RemoteBlock{b}))
	got, err = d.RemoteBlocks(t.Context())
	require.NoError(t, err)
	require.Equal(t, []RemoteBlock{b}, got)
	require.False(t, lookup(10, "10.0.1.7").IsValid())
	require.ErrorIs(t, objs.SdncniXback.Lookup(&sent, &at), ebpf.ErrKeyNotExist, "a block went: the flow is forgotten")

	for _, bad := range []RemoteBlock{
		{VPN: 0, Block: a.Block, Node: node2},
		{VPN: MaxVNI + 1, Block: a.Block, Node: node2},
		{VPN: 10, Block: netip.MustParsePrefix("10.0.1.1/24"), Node: node2},
		{VPN: 10, Block: netip.MustParsePrefix("fd00::/64"), Node: node2},
		{VPN: 10, Block: a.Block, Node: netip.MustParseAddr("fd00::1")},
	} {
		require.Error(t, d.SetRemoteBlocks(t.Context(), []RemoteBlock{bad}), "%+v", bad)
	}
}
