//go:build linux

package datapath

import (
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"

	"github.com/sdncni/sdncni/internal/testenv"
)

// TestSweep: with real maps, Sweep removes every per-pod entry without a live
// attachment — a destination whose endpoint is gone (the case restart reconciliation
// and GC used to miss), a destination pointing at another pod's veth, an OVS-port entry
// without its pod entry, entries of vanished interfaces and of interfaces that are not
// ours — and leaves the live pod's entries and programs as they were.
func TestSweep(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "ip")
	tp := newTopo(t, "bridge")
	d := tp.open(t, AttachAuto)
	t.Cleanup(func() { tp.inNode(t, func() error { return d.Teardown(t.Context()) }) })
	a, b := tp.a.ep, tp.b.ep
	tp.inNode(t, func() error { return d.Attach(t.Context(), a) })
	tp.inNode(t, func() error { return d.Attach(t.Context(), b) })

	// b loses its ifindex entries (a crash mid-DEL): its destination entry stays behind.
	require.NoError(t, d.objs.SdncniEp.Delete(uint32(b.HostIfIndex)))
	_, ovsB, _, _ := b.entries()
	// Keep b's OVS-port entry, as if only the pod entry had been removed.
	require.NoError(t, d.objs.SdncniEp.Update(uint32(b.OVSIfIndex), &ovsB, ebpf.UpdateAny))

	var lo int
	tp.inNode(t, func() error {
		l, err := netlink.LinkByName("lo")
		lo = l.Attrs().Index
		return err
	})
	podA, _, _, dstA := a.entries()
	stale := map[string]func() error{
		"destination of a vanished interface": func() error {
			k := bpfDstKey{Vpn: a.VPN, Ip: be32(netip.MustParseAddr("10.1.0.200"))}
			v := bpfDst{HostIfindex: 99999, Mac: dstA.Mac}
			return d.objs.SdncniDst.Update(&k, &v, ebpf.UpdateAny)
		},
		"destination claiming a's veth with another address": func() error {
			k := bpfDstKey{Vpn: a.VPN, Ip: be32(netip.MustParseAddr("10.1.0.201"))}
			return d.objs.SdncniDst.Update(&k, &dstA, ebpf.UpdateAny)
		},
		"destination of a in another VPN": func() error {
			k := bpfDstKey{Vpn: a.VPN + 1, Ip: be32(a.IP)}
			return d.objs.SdncniDst.Update(&k, &dstA, ebpf.UpdateAny)
		},
		"endpoint of a vanished interface": func() error {
			return d.objs.SdncniEp.Update(uint32(99998), &podA, ebpf.UpdateAny)
		},
		"endpoint on an interface that is not ours": func() error {
			return d.objs.SdncniEp.Update(uint32(lo), &podA, ebpf.UpdateAny)
		},
		"pair entry of a and the gone b": func() error {
			k := bpfPolKey{Vpn: a.VPN, Src: be32(a.IP), Dst: be32(b.IP)}
			v := bpfPol{SrcIfindex: uint32(a.HostIfIndex), DstIfindex: uint32(b.HostIfIndex), All: 1}
			return d.objs.SdncniPol.Update(&k, &v, ebpf.UpdateAny)
		},
		"connection of the gone b": func() error {
			k := bpfCtKey{Vpn: a.VPN, Saddr: be32(b.IP), Daddr: be32(a.IP), Sport: 1, Dport: 2, Proto: 6}
			v := bpfCt{LastSeen: 1, SrcIfindex: uint32(b.HostIfIndex), DstIfindex: uint32(a.HostIfIndex)}
			return d.objs.SdncniCt.Update(&k, &v, ebpf.UpdateAny)
		},
	}
	// Entries bound to a alone stay.
	keptPair := bpfPolKey{Vpn: a.VPN, Src: be32(a.IP), Dst: be32(a.IP)}
	keptConn := bpfCtKey{Vpn: a.VPN, Saddr: be32(a.IP), Daddr: be32(a.IP), Sport: 3, Dport: 4, Proto: 17}
	require.NoError(t, d.objs.SdncniCt.Update(&keptConn,
		&bpfCt{LastSeen: 1, SrcIfindex: uint32(a.HostIfIndex), DstIfindex: uint32(a.HostIfIndex)}, ebpf.UpdateAny))
	for what, inject := range stale {
		require.NoError(t, inject(), what)
	}
	// Bound to a's veth on both ends.
	require.NoError(t, d.objs.SdncniPol.Update(&keptPair,
		&bpfPol{SrcIfindex: uint32(a.HostIfIndex), DstIfindex: uint32(a.HostIfIndex), All: 1}, ebpf.UpdateAny))

	live := map[string]bool{a.HostIfName: true, a.OVSIfName: true}
	var rep SweepReport
	tp.inNode(t, func() error {
		var err error
		rep, err = d.Sweep(t.Context(), live)
		return err
	})
	// b's destination + 3 injected; b's OVS-port entry + 2 injected; the pair entry and
	// connection of b.
	require.Equal(t, SweepReport{Endpoints: 3, Destinations: 4, Pairs: 1, Connections: 1}, rep)
	var pv bpfPol
	require.NoError(t, d.objs.SdncniPol.Lookup(&keptPair, &pv))
	var cv bpfCt
	require.NoError(t, d.objs.SdncniCt.Lookup(&keptConn, &cv))

	var eps []uint32
	var ifindex uint32
	var ep bpfEndpoint
	it := d.objs.SdncniEp.Iterate()
	for it.Next(&ifindex, &ep) {
		eps = append(eps, ifindex)
	}
	require.NoError(t, it.Err())
	require.ElementsMatch(t, []uint32{uint32(a.HostIfIndex), uint32(a.OVSIfIndex)}, eps)
	var keys []bpfDstKey
	var key bpfDstKey
	var dst bpfDst
	it = d.objs.SdncniDst.Iterate()
	for it.Next(&key, &dst) {
		keys = append(keys, key)
	}
	require.NoError(t, it.Err())
	require.Equal(t, []bpfDstKey{{Vpn: a.VPN, Ip: be32(a.IP)}}, keys)
	tp.inNode(t, func() error { return d.Check(t.Context(), a) })

	// Nothing left to sweep: a second run removes nothing.
	tp.inNode(t, func() error {
		var err error
		rep, err = d.Sweep(t.Context(), live)
		return err
	})
	require.Zero(t, rep.Total())

	// Without live attachments everything per-pod goes.
	tp.inNode(t, func() error {
		_, err := d.Sweep(t.Context(), nil)
		return err
	})
	requireNoEntries(t, d)
	tp.inNode(t, func() error { return d.Detach(t.Context(), a) })
	tp.inNode(t, func() error { return d.Detach(t.Context(), b) })
}
