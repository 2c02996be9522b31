//go:build linux

package datapath

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
)

// hookFromVXLAN names sdncni_from_vxlan's hook on the node's VXLAN device.
const hookFromVXLAN = "from_vxlan"

// MaxVNI is the largest VPN ID the cross-node path carries: VXLAN's VNI has 24 bits and
// the top one marks a packet sent back for OVS (XNODE_VNI_BOUNCE). The traffic of VPNs
// with larger IDs takes Geneve.
const MaxVNI = 1<<23 - 1

// MaxRemoteBlocks is how many other nodes' blocks sdncni_remote holds.
const MaxRemoteBlocks = 65536

// ErrTooManyRemoteBlocks is returned by SetRemoteBlocks when the set does not fit.
var ErrTooManyRemoteBlocks = errors.New("too many remote blocks")

// RemoteBlock is an address block of a VPN that another node holds, and the underlay
// address at which that node's VXLAN device takes the block's traffic.
type RemoteBlock struct {
	VPN   uint32
	Block netip.Prefix // IPv4, masked
	Node  netip.Addr   // the holding node's underlay IPv4
}

func (b RemoteBlock) key() (bpfRemoteKey, error) {
	if b.VPN == 0 || b.VPN > MaxVNI || !b.Block.IsValid() || !b.Block.Addr().Is4() ||
		b.Block != b.Block.Masked() || !b.Node.Unmap().Is4() || b.Node.IsUnspecified() {
		return bpfRemoteKey{}, fmt.Errorf("remote block %d/%s at %s: want a VPN of 1..%d, a masked IPv4 block and an IPv4 node", b.VPN, b.Block, b.Node, MaxVNI)
	}
	return bpfRemoteKey{Prefixlen: 32 + uint32(b.Block.Bits()), Vpn: b.VPN, Ip: be32(b.Block.Addr())}, nil
}

// CrossNode is the cross-node fast path of this node.
type CrossNode struct {
	// On switches the path on: from_pod sends same-VPN IPv4 for other nodes' blocks
	// (SetRemoteBlocks) over VXLAN, from_vxlan delivers what arrives. Off, everything
	// takes Geneve through OVS and from_vxlan drops what still arrives.
	On bool
	// VXLANIfName is the node's collect-metadata VXLAN device (ip link add … type vxlan
	// external); sdncni_from_vxlan is attached to its ingress. Required when On.
	VXLANIfName string
	// Local is this node's own underlay IPv4 (its blocks are never remote).
	Local netip.Addr
}

// SetCrossNode attaches sdncni_from_vxlan to the VXLAN device and switches the path
// on, or switches it off (the program stays attached and drops: a node that is off
// receives nothing over VXLAN). The path is off until it is called; takes effect on the
// next packet, with no pod restart.
func (d *Datapath) SetCrossNode(ctx context.Context, c CrossNode) error {
	var v bpfXnode
	if c.On {
		if c.VXLANIfName == "" || !c.Local.Unmap().Is4() {
			return fmt.Errorf("set cross-node path: want a VXLAN device and an IPv4 underlay address")
		}
		l, err := netlink.LinkByName(c.VXLANIfName)
		if err != nil {
			return fmt.Errorf("set cross-node path: vxlan device %s: %w", c.VXLANIfName, err)
		}
		vx, ok := l.(*netlink.Vxlan)
		if !ok || !vx.FlowBased {
			return fmt.Errorf("set cross-node path: %s is not a collect-metadata (external) vxlan device", c.VXLANIfName)
		}
		h := hook{name: hookFromVXLAN, ifindex: l.Attrs().Index, ifname: c.VXLANIfName, prog: d.objs.SdncniFromVxlan}
		// Program first, then the switch: a packet never meets a device without it.
		if err := d.attachHook(h); err != nil {
			return fmt.Errorf("set cross-node path: %w", err)
		}
		if err := netlink.LinkSetUp(l); err != nil {
			return fmt.Errorf("set cross-node path: set %s up: %w", c.VXLANIfName, err)
		}
		v = bpfXnode{On: 1, VxlanIfindex: uint32(l.Attrs().Index), Local: be32(c.Local)}
	} else {
		// Keep the device so that from_vxlan keeps dropping for it.
		_ = d.objs.SdncniXnode.Lookup(uint32(0), &v)
		v.On = 0
	}
	if err := d.objs.SdncniXnode.Update(uint32(0), &v, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("set cross-node path %t: %w", c.On, err)
	}
	return nil
}

// CrossNodeState reads the cross-node switch: whether it is on, the VXLAN device's
// ifindex and the local underlay address.
func (d *Datapath) CrossNodeState(ctx context.Context) (on bool, vxlanIfIndex int, local netip.Addr, err error) {
	var v bpfXnode
	if err := d.objs.SdncniXnode.Lookup(uint32(0), &v); err != nil {
		return false, 0, netip.Addr{}, fmt.Errorf("read cross-node path: %w", err)
	}
	if v.Local != 0 {
		local = addrFromBE32(v.Local)
	}
	return v.On == 1, int(v.VxlanIfindex), local, nil
}

// vxlanHook is the hook of the VXLAN device sdncni_xnode names, if any.
func (d *Datapath) vxlanHook() (hook, bool) {
	var v bpfXnode
	if d.objs.SdncniXnode.Lookup(uint32(0), &v) != nil || v.VxlanIfindex == 0 {
		return hook{}, false
	}
	h := hook{name: hookFromVXLAN, ifindex: int(v.VxlanIfindex), prog: d.objs.SdncniFromVxlan}
	if l, err := netlink.LinkByIndex(h.ifindex); err == nil {
		h.ifname = l.Attrs().Name
	}
	return h, true
}

// SetRemoteBlocks makes sdncni_remote exactly blocks: the other nodes' blocks whose
// pods the cross-node path reaches, by VPN. New entries are written first, then stale
// ones removed, so a block that only changes node is never missing. A VPN with no
// entry takes Geneve: this is the per-VPN switch, and also how a node that does not
// run the path (or whose VXLAN port is blocked) is kept out. Returns
// ErrTooManyRemoteBlocks when blocks do not fit.
//
// When a block goes (its node stopped answering, restarted without the path, or gave
// it up), the flows that receivers sent back (sdncni_xback) are forgotten too: what a
// node that is gone or started again told us no longer holds, and a flow forgotten
// needlessly only pays one more round trip.
func (d *Datapath) SetRemoteBlocks(ctx context.Context, blocks []RemoteBlock) error {
	if len(blocks) > MaxRemoteBlocks {
		return fmt.Errorf("set remote blocks: %d: %w", len(blocks), ErrTooManyRemoteBlocks)
	}
	want := make(map[bpfRemoteKey]bpfRemote, len(blocks))
	for _, b := range blocks {
		k, err := b.key()
		if err != nil {
			return fmt.Errorf("set remote blocks: %w", err)
		}
		want[k] = bpfRemote{Underlay: be32(b.Node)}
	}
	for k, v := range want {
		var got bpfRemote
		if d.objs.SdncniRemote.Lookup(&k, &got) == nil && got == v {
			continue
		}
		if err := d.objs.SdncniRemote.Update(&k, &v, ebpf.UpdateAny); err != nil {
			return fmt.Errorf("set remote block %d/%s: %w", k.Vpn, addrFromBE32(k.Ip), err)
		}
	}
	var (
		k     bpfRemoteKey
		v     bpfRemote
		stale []bpfRemoteKey
	)
	it := d.objs.SdncniRemote.Iterate()
	for it.Next(&k, &v) {
		if _, ok := want[k]; !ok {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("set remote blocks: list: %w", err)
	}
	for _, k := range stale {
		if err := d.objs.SdncniRemote.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("remove remote block %d/%s: %w", k.Vpn, addrFromBE32(k.Ip), err)
		}
	}
	if len(stale) > 0 {
		if err := d.forgetSentBack(); err != nil {
			return fmt.Errorf("set remote blocks: %w", err)
		}
	}
	return nil
}

// forgetSentBack empties sdncni_xback.
func (d *Datapath) forgetSentBack() error {
	var (
		k    bpfCtKey
		v    uint64
		keys []bpfCtKey
	)
	it := d.objs.SdncniXback.Iterate()
	for it.Next(&k, &v) {
		keys = append(keys, k)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("list sent-back flows: %w", err)
	}
	for _, k := range keys {
		if err := d.objs.SdncniXback.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("forget sent-back flow: %w", err)
		}
	}
	return nil
}

// RemoteBlocks lists sdncni_remote.
func (d *Datapath) RemoteBlocks(ctx context.Context) ([]RemoteBlock, error) {
	var (
		k   bpfRemoteKey
		v   bpfRemote
		out []RemoteBlock
	)
	it := d.objs.SdncniRemote.Iterate()
	for it.Next(&k, &v) {
		out = append(out, RemoteBlock{VPN: k.Vpn, Block: netip.PrefixFrom(addrFromBE32(k.Ip), int(k.Prefixlen)-32),
			Node: addrFromBE32(v.Underlay)})
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list remote blocks: %w", err)
	}
	return out, nil
}

// PeerAnswers returns, by underlay address, when each peer last answered a probe of
// this node (CLOCK_MONOTONIC nanoseconds, bpf_ktime_get_ns). Probes are sent by the
// caller (VNI 0 to the peer's VXLAN port); from_vxlan of a peer whose cross-node path is
// on answers them, and our from_vxlan records the answer here.
func (d *Datapath) PeerAnswers(ctx context.Context) (map[netip.Addr]uint64, error) {
	var (
		k   uint32
		v   uint64
		out = map[netip.Addr]uint64{}
	)
	it := d.objs.SdncniXpeer.Iterate()
	for it.Next(&k, &v) {
		out[addrFromBE32(k)] = v
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read peer answers: %w", err)
	}
	return out, nil
}
