//go:build linux

package datapath

import (
	"net"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/stretchr/testify/require"

	"github.com/sdncni/sdncni/internal/testenv"
)

const (
	tcActShot     = 2
	tcActRedirect = 7
	loIfindex     = 1 // the test runs see skb->ifindex of loopback
)

// Verifier budgets: the processed instructions measured on Linux 6.18 with clang 14;
// the test fails above 1.5× the budget. Raise them deliberately, in the same commit as
// the program change that needs it.
var verifierBudget = map[string]uint32{
	bpfProgSdncniFromPod:   1832, // 1830 before sdncni_xback, 480 before NetworkPolicy (sdncni_pol, sdncni_ct), 1245 before sdncni_pol_ovs, 1381 before the cross-node branch
	bpfProgSdncniFromOvs:   64,
	bpfProgSdncniFromVxlan: 806, // 723 before sdncni_xback
}

var (
	macA    = net.HardwareAddr{2, 0, 0, 0, 0, 0xa}
	macB    = net.HardwareAddr{2, 0, 0, 0, 0, 0xb}
	macC    = net.HardwareAddr{2, 0, 0, 0, 0, 0xc}
	macD    = net.HardwareAddr{2, 0, 0, 0, 0, 0xd}
	macE    = net.HardwareAddr{2, 0, 0, 0, 0, 0xe}
	macX    = net.HardwareAddr{2, 0, 0, 0, 0, 0x99}
	bcast   = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	mcast   = net.HardwareAddr{0x01, 0, 0x5e, 0, 0, 1}
	ipA     = netip.MustParseAddr("10.0.0.1")
	ipB     = netip.MustParseAddr("10.0.0.2")
	ipC     = netip.MustParseAddr("10.0.0.3")
	ipE     = netip.MustParseAddr("10.0.0.5")
	unknown = netip.MustParseAddr("10.0.0.77")
)

// The sender A is "on" loopback (ifindex 1) in VPN 10.
var (
	epA = Endpoint{VPN: 10, HostIfIndex: loIfindex, OVSIfIndex: 100, HostIfName: "a", OVSIfName: "ao", MAC: macA, IP: ipA, FastPath: true}
	epB = Endpoint{VPN: 10, HostIfIndex: 200, OVSIfIndex: 201, HostIfName: "b", OVSIfName: "bo", MAC: macB, IP: ipB, FastPath: true}
	// C lives in VPN 20; D in VPN 20 has B's IP (overlapping CIDRs).
	epC = Endpoint{VPN: 20, HostIfIndex: 300, OVSIfIndex: 301, HostIfName: "c", OVSIfName: "co", MAC: macC, IP: ipC, FastPath: true}
	epD = Endpoint{VPN: 20, HostIfIndex: 400, OVSIfIndex: 401, HostIfName: "d", OVSIfName: "do", MAC: macD, IP: ipB, FastPath: true}
	// E in VPN 10 has the fast path off.
	epE = Endpoint{VPN: 10, HostIfIndex: 500, OVSIfIndex: 501, HostIfName: "e", OVSIfName: "eo", MAC: macE, IP: ipE, FastPath: false}
)

func loadTestObjects(t *testing.T) (*Datapath, bpfObjects) {
	t.Helper()
	testenv.RequireRoot(t)
	objs, names, err := loadObjects("")
	require.NoError(t, err)
	t.Cleanup(func() { _ = objs.Close() })
	return &Datapath{objs: objs, names: names}, objs
}

func mustWrite(t *testing.T, m *bpfMaps, eps ...Endpoint) {
	t.Helper()
	for _, ep := range eps {
		_, err := writeEntries(m, ep)
		require.NoError(t, err)
	}
}

func clearMaps(t *testing.T, m *bpfMaps) {
	t.Helper()
	for _, mp := range []*ebpf.Map{m.SdncniEp, m.SdncniDst, m.SdncniVpnOff, m.SdncniXback} {
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

// run feeds data to prog as if received on loopback and returns the verdict, the
// frame after the run and the counters that moved.
func run(t *testing.T, d *Datapath, prog *ebpf.Program, data []byte) (uint32, []byte, map[string]uint64) {
	t.Helper()
	before, err := d.Counters(t.Context())
	require.NoError(t, err)
	out := make([]byte, len(data)+256)
	opts := ebpf.RunOptions{Data: data, DataOut: out, Context: skbContext{Ifindex: loIfindex}}
	ret, err := prog.Run(&opts)
	require.NoError(t, err)
	after, err := d.Counters(t.Context())
	require.NoError(t, err)
	moved := map[string]uint64{}
	for k, v := range after {
		if v != before[k] {
			moved[k] = v - before[k]
		}
	}
	return ret, opts.DataOut, moved
}

func TestFromPodVerdicts(t *testing.T) {
	d, objs := loadTestObjects(t)
	m := &objs.bpfMaps
	good := frame{dstMAC: macB, srcMAC: macA, src: ipA, dst: ipB}
	with := func(mod func(*frame)) frame { f := good; mod(&f); return f }

	tests := []struct {
		name   string
		frame  frame
		setup  func(t *testing.T, d *Datapath)
		reason string
	}{
		{name: "same vpn", frame: good, reason: "redirect_fast"},
		{name: "cross vpn dst", frame: with(func(f *frame) { f.dst, f.dstMAC = ipC, macC }), reason: "to_ovs_cross_vpn_or_unknown_dst"},
		{name: "overlap: vpn 20 pod's MAC on vpn 10 IP", frame: with(func(f *frame) { f.dstMAC = macD }), reason: "to_ovs_dst_mac_mismatch"},
		{name: "overlap: sender in vpn 20 reaches its own 10.0.0.2", frame: frame{dstMAC: macD, srcMAC: macC, src: ipC, dst: ipB},
			setup: func(t *testing.T, d *Datapath) { asSender(t, d, epC) }, reason: "redirect_fast"},
		{name: "overlap: sender in vpn 20 to vpn 10's 10.0.0.2", frame: frame{dstMAC: macB, srcMAC: macC, src: ipC, dst: ipB},
			setup: func(t *testing.T, d *Datapath) { asSender(t, d, epC) }, reason: "to_ovs_dst_mac_mismatch"},
		{name: "spoofed source MAC", frame: with(func(f *frame) { f.srcMAC = macX }), reason: "to_ovs_spoofed"},
		{name: "spoofed source IP", frame: with(func(f *frame) { f.src = unknown }), reason: "to_ovs_spoofed"},
		{name: "ARP", frame: with(func(f *frame) { f.etherType = 0x0806 }), reason: "to_ovs_not_ipv4"},
		{name: "IPv6", frame: with(func(f *frame) { f.etherType = 0x86dd }), reason: "to_ovs_not_ipv4"},
		{name: "VLAN tagged", frame: with(func(f *frame) { f.vlan = true }), reason: "to_ovs_vlan"},
		{name: "eth only, ARP type", frame: with(func(f *frame) { f.etherType, f.truncate = 0x0806, 14 }), reason: "to_ovs_not_ipv4"},
		{name: "short LLDP frame", frame: with(func(f *frame) { f.etherType, f.truncate = 0x88cc, 24 }), reason: "to_ovs_not_ipv4"},
		{name: "VLAN tag, short", frame: with(func(f *frame) { f.vlan, f.truncate = true, 18 }), reason: "to_ovs_vlan"},
		{name: "IPv4 ihl < 5", frame: with(func(f *frame) { f.ihl = 4 }), reason: "to_ovs_malformed"},
		{name: "broadcast", frame: with(func(f *frame) { f.dstMAC = bcast }), reason: "to_ovs_not_unicast"},
		{name: "multicast", frame: with(func(f *frame) { f.dstMAC = mcast }), reason: "to_ovs_not_unicast"},
		{name: "unknown destination", frame: with(func(f *frame) { f.dst = unknown }), reason: "to_ovs_cross_vpn_or_unknown_dst"},
		{name: "dst MAC of the gateway", frame: with(func(f *frame) { f.dstMAC = macX }), reason: "to_ovs_dst_mac_mismatch"},
		{name: "first fragment", frame: with(func(f *frame) { f.fragOff = 0x2000 }), reason: "to_ovs_fragment"},
		{name: "later fragment", frame: with(func(f *frame) { f.fragOff = 0x0010 }), reason: "to_ovs_fragment"},
		{name: "DF is not a fragment", frame: with(func(f *frame) { f.fragOff = 0x4000 }), reason: "redirect_fast"},
		{name: "fast path globally off", frame: good, setup: func(t *testing.T, d *Datapath) {
			require.NoError(t, d.SetFastPath(t.Context(), false))
		}, reason: "to_ovs_fastpath_off"},
		{name: "vpn off", frame: good, setup: func(t *testing.T, d *Datapath) {
			require.NoError(t, d.SetVPNFastPath(t.Context(), 10, false))
		}, reason: "to_ovs_fastpath_off"},
		{name: "other vpn off", frame: good, setup: func(t *testing.T, d *Datapath) {
			require.NoError(t, d.SetVPNFastPath(t.Context(), 20, false))
		}, reason: "redirect_fast"},
		{name: "sender fast path off", frame: good, setup: func(t *testing.T, d *Datapath) {
			a := epA
			a.FastPath = false
			mustWrite(t, &d.objs.bpfMaps, a)
		}, reason: "to_ovs_fastpath_off"},
		{name: "dst fast path off", frame: with(func(f *frame) { f.dst, f.dstMAC = ipE, macE }), reason: "to_ovs_dst_fastpath_off"},
		{name: "to itself", frame: with(func(f *frame) { f.dst, f.dstMAC = ipA, macA }), reason: "to_ovs_hairpin"},
		{name: "unknown ingress ifindex", frame: good, setup: func(t *testing.T, d *Datapath) {
			clearMaps(t, &d.objs.bpfMaps)
			mustWrite(t, &d.objs.bpfMaps, epB)
		}, reason: "drop_unknown_ifindex"},
		{name: "ingress is an OVS port", frame: good, setup: func(t *testing.T, d *Datapath) {
			clearMaps(t, &d.objs.bpfMaps)
			mustWrite(t, &d.objs.bpfMaps, Endpoint{VPN: 10, HostIfIndex: 50, OVSIfIndex: loIfindex, HostIfName: "x", OVSIfName: "y", MAC: macA, IP: ipA, FastPath: true}, epB)
		}, reason: "drop_wrong_role"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearMaps(t, m)
			require.NoError(t, d.SetFastPath(t.Context(), true))
			mustWrite(t, m, epA, epB, epC, epD, epE)
			if tt.setup != nil {
				tt.setup(t, d)
			}
			in := tt.frame.bytes()
			ret, out, moved := run(t, d, objs.SdncniFromPod, in)
			require.Equal(t, map[string]uint64{tt.reason: 1}, moved)
			want := uint32(tcActRedirect)
			if tt.reason == "drop_unknown_ifindex" || tt.reason == "drop_wrong_role" {
				want = tcActShot
			}
			require.Equal(t, want, ret)
			require.Equal(t, in, out, "the program never rewrites the frame")
		})
	}
}

// asSender makes ep the endpoint on loopback, the sender of the test runs.
func asSender(t *testing.T, d *Datapath, ep Endpoint) {
	t.Helper()
	ep.HostIfIndex, ep.OVSIfIndex = loIfindex, 999
	mustWrite(t, &d.objs.bpfMaps, ep)
}

func TestFromOVSVerdicts(t *testing.T) {
	d, objs := loadTestObjects(t)
	in := frame{dstMAC: macA, srcMAC: macB, src: ipB, dst: ipA}.bytes()

	mustWrite(t, &objs.bpfMaps, Endpoint{VPN: 10, HostIfIndex: 50, OVSIfIndex: loIfindex, HostIfName: "x", OVSIfName: "y", MAC: macA, IP: ipA})
	ret, out, moved := run(t, d, objs.SdncniFromOvs, in)
	require.Equal(t, uint32(tcActRedirect), ret)
	require.Equal(t, map[string]uint64{"from_ovs": 1}, moved)
	require.Equal(t, in, out)

	clearMaps(t, &objs.bpfMaps)
	mustWrite(t, &objs.bpfMaps, epA) // loopback is a pod-side interface now
	ret, _, moved = run(t, d, objs.SdncniFromOvs, in)
	require.Equal(t, uint32(tcActShot), ret)
	require.Equal(t, map[string]uint64{"drop_wrong_role": 1}, moved)
}

func TestEmptyMapsAreSafe(t *testing.T) {
	d, objs := loadTestObjects(t)
	frames := [][]byte{
		frame{dstMAC: macB, srcMAC: macA, src: ipA, dst: ipB}.bytes(),
		frame{dstMAC: bcast, srcMAC: macA, src: ipA, dst: ipB, etherType: 0x0806}.bytes(),
		frame{dstMAC: macB, srcMAC: macA, src: ipA, dst: ipB, etherType: 0x88cc, truncate: 20}.bytes(),
	}
	for _, prog := range []*ebpf.Program{objs.SdncniFromPod, objs.SdncniFromOvs} {
		for _, f := range frames {
			ret, _, moved := run(t, d, prog, f)
			require.Equal(t, uint32(tcActShot), ret)
			require.Equal(t, map[string]uint64{"drop_unknown_ifindex": 1}, moved)
		}
	}
}

// BPF_PROG_TEST_RUN refuses frames shorter than an Ethernet header, and IPv4 frames
// shorter than Ethernet + IPv4 headers, so the program's short-IPv4 branch
// (to_ovs_malformed) is only covered by its short non-IPv4 siblings above. Check the
// kernel still refuses, so this test notices when it starts accepting them.
func TestShortFrameRejectedByKernel(t *testing.T) {
	_, objs := loadTestObjects(t)
	good := frame{dstMAC: macB, srcMAC: macA, src: ipA, dst: ipB}
	for _, n := range []int{13, 14, 24, 33} {
		f := good.bytes()[:n]
		_, err := objs.SdncniFromPod.Run(&ebpf.RunOptions{Data: f, Context: skbContext{Ifindex: loIfindex}})
		require.Error(t, err, "%d bytes", n)
	}
}

func TestCounterNamesComplete(t *testing.T) {
	spec, err := loadBpf()
	require.NoError(t, err)
	names, err := reasonNames(spec)
	require.NoError(t, err)
	require.Len(t, names, int(bpfReasonREASON_MAX))
	require.Equal(t, "redirect_fast", names[bpfReasonREASON_REDIRECT_FAST])
	require.Equal(t, "to_ovs_cross_vpn_or_unknown_dst", names[bpfReasonREASON_TO_OVS_CROSS_VPN_OR_UNKNOWN_DST])
}

func TestVerifierBudget(t *testing.T) {
	_, objs := loadTestObjects(t)
	for name, prog := range map[string]*ebpf.Program{
		bpfProgSdncniFromPod:   objs.SdncniFromPod,
		bpfProgSdncniFromOvs:   objs.SdncniFromOvs,
		bpfProgSdncniFromVxlan: objs.SdncniFromVxlan,
	} {
		info, err := prog.Info()
		require.NoError(t, err)
		n, ok := info.VerifiedInstructions()
		require.True(t, ok, "kernel reports no verified_insns")
		t.Logf("%s: verifier processed %d insns (budget %d)", name, n, verifierBudget[name])
		require.LessOrEqual(t, n, verifierBudget[name]*3/2, "%s: verifier cost regressed", name)
	}
}

// TestFromPodServiceEndpoints: a same-VPN flow whose source or destination is a
// Service endpoint (VPN, IP, port, protocol) goes to OVS; the same pods' other flows,
// the other protocol and another VPN's endpoint with the same address keep the fast
// path. SetServiceEndpoints replaces the set.
func TestFromPodServiceEndpoints(t *testing.T) {
	d, objs := loadTestObjects(t)
	m := &objs.bpfMaps
	clearMaps(t, m)
	mustWrite(t, m, epA, epB, epD)
	require.NoError(t, d.SetFastPath(t.Context(), true))
	toB := frame{dstMAC: macB, srcMAC: macA, src: ipA, dst: ipB} // A:40000 → B:80, TCP
	tests := []struct {
		name   string
		eps    []ServiceEndpoint
		frame  frame
		reason string
	}{
		{"no endpoints", nil, toB, "redirect_fast"},
		{"to an endpoint", []ServiceEndpoint{{VPN: 10, IP: ipB, Port: 80, Protocol: "tcp"}}, toB, "to_ovs_service"},
		{"reply of an endpoint", []ServiceEndpoint{{VPN: 10, IP: ipA, Port: 40000, Protocol: "tcp"}}, toB, "to_ovs_service"},
		{"other port", []ServiceEndpoint{{VPN: 10, IP: ipB, Port: 81, Protocol: "tcp"}}, toB, "redirect_fast"},
		{"other protocol", []ServiceEndpoint{{VPN: 10, IP: ipB, Port: 80, Protocol: "udp"}}, toB, "redirect_fast"},
		{"udp endpoint", []ServiceEndpoint{{VPN: 10, IP: ipB, Port: 53, Protocol: "udp"}},
			frame{dstMAC: macB, srcMAC: macA, src: ipA, dst: ipB, proto: 17, dport: 53}, "to_ovs_service"},
		{"same address in another VPN", []ServiceEndpoint{{VPN: 20, IP: ipB, Port: 80, Protocol: "tcp"}}, toB, "redirect_fast"},
		{"icmp ignores ports", []ServiceEndpoint{{VPN: 10, IP: ipB, Port: 80, Protocol: "tcp"}},
			frame{dstMAC: macB, srcMAC: macA, src: ipA, dst: ipB, proto: 1}, "redirect_fast"},
		{"ports cut off", []ServiceEndpoint{{VPN: 10, IP: ipB, Port: 80, Protocol: "tcp"}},
			frame{dstMAC: macB, srcMAC: macA, src: ipA, dst: ipB, truncate: 36}, "to_ovs_malformed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, d.SetServiceEndpoints(t.Context(), tc.eps))
			got, err := d.ServiceEndpoints(t.Context())
			require.NoError(t, err)
			require.ElementsMatch(t, tc.eps, got)
			ret, _, moved := run(t, d, objs.SdncniFromPod, tc.frame.bytes())
			require.Equal(t, map[string]uint64{tc.reason: 1}, moved)
			require.Equal(t, uint32(tcActRedirect), ret)
		})
	}
	require.Error(t, d.SetServiceEndpoints(t.Context(), []ServiceEndpoint{{VPN: 10, IP: ipB, Port: 80, Protocol: "sctp"}}))
	require.NoError(t, d.SetServiceEndpoints(t.Context(), nil))
}
