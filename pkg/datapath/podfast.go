//go:build linux

package datapath

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
)

// SetEndpointFastPath switches the fast path of the pod with address ip in VPN vpn on or
// off, in both directions: off, from_pod sends its packets to OVS and no other pod's
// packet is redirected to it, so OVN's pipeline (ACLs, conntrack) sees all of its
// traffic. The error wraps ebpf.ErrKeyNotExist when no such pod is here.
func (d *Datapath) SetEndpointFastPath(ctx context.Context, vpn uint32, ip netip.Addr, on bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	flag := uint8(bpfEpFlagEP_FASTPATH)
	set := func(f uint8) uint8 {
		if on {
			return f | flag
		}
		return f &^ flag
	}
	// Destination first when switching off (nobody redirects to it any more), the
	// sender's entries first when switching on: never a moment where only one direction
	// of a pair skips OVS while the pod is meant to be off.
	if err := d.updateFlags(vpn, ip, set, !on); err != nil {
		return fmt.Errorf("set fast path of %d/%s: %w", vpn, ip, err)
	}
	return nil
}

// updateFlags rewrites the flags of the pod's three entries (its destination entry and
// the ifindex entries of its host veth and OVS port) with set, the destination entry
// first or last. The error wraps ebpf.ErrKeyNotExist when no such pod is here.
func (d *Datapath) updateFlags(vpn uint32, ip netip.Addr, set func(uint8) uint8, dstFirst bool) error {
	key := bpfDstKey{Vpn: vpn, Ip: be32(ip)}
	var dst bpfDst
	if err := d.objs.SdncniDst.Lookup(&key, &dst); err != nil {
		return fmt.Errorf("endpoint %d/%s: %w", vpn, ip, err)
	}
	writeDst := func() error {
		if f := set(dst.Flags); f != dst.Flags {
			dst.Flags = f
			return d.objs.SdncniDst.Update(&key, &dst, ebpf.UpdateExist)
		}
		return nil
	}
	writeEPs := func() error {
		var host bpfEndpoint
		if err := d.objs.SdncniEp.Lookup(dst.HostIfindex, &host); err != nil {
			return fmt.Errorf("endpoint %d: %w", dst.HostIfindex, err)
		}
		var errs []error
		for _, i := range []uint32{dst.HostIfindex, host.PeerIfindex} {
			var e bpfEndpoint
			if err := d.objs.SdncniEp.Lookup(i, &e); err != nil {
				errs = append(errs, fmt.Errorf("endpoint %d: %w", i, err))
				continue
			}
			if f := set(e.Flags); f != e.Flags {
				e.Flags = f
				if err := d.objs.SdncniEp.Update(i, &e, ebpf.UpdateExist); err != nil {
					errs = append(errs, fmt.Errorf("endpoint %d: %w", i, err))
				}
			}
		}
		return errors.Join(errs...)
	}
	steps := []func() error{writeEPs, writeDst}
	if dstFirst {
		steps = []func() error{writeDst, writeEPs}
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return err
		}
	}
	return nil
}
