//go:build linux

package datapath

import (
	"context"
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
)

// SweepReport counts what Sweep removed, per map.
type SweepReport struct {
	Endpoints    int // sdncni_ep: ifindex entries
	Destinations int // sdncni_dst: {VPN, IP} entries
	Pairs        int // sdncni_pol: pair entries
	Connections  int // sdncni_ct: admitted connections
}

// Total is the number of entries removed.
func (r SweepReport) Total() int { return r.Endpoints + r.Destinations + r.Pairs + r.Connections }

// Sweep removes every per-pod map entry that belongs to no live attachment; live holds
// the interface names (host veth and OVS port) of the attachments to keep.
//
//   - sdncni_ep is keyed by the ifindex of a host veth (role pod) or OVS port (role
//     ovs): an entry stays only while that interface exists and is named in live.
//   - sdncni_dst is keyed by {VPN, IP} and names the host veth of the pod holding that
//     address: an entry stays only while a remaining role-pod entry at that ifindex has
//     the same VPN, IP and MAC. So a destination whose endpoint is gone is removed even
//     when its interface still exists.
//   - sdncni_pol (pair entries) and sdncni_ct (admitted connections) are keyed by two
//     {VPN, IP} of pods and name the host veths of both: an entry stays only while both
//     destination entries remain and point at those veths.
//
// The other maps hold no per-pod state: sdncni_cfg (the global switch) and sdncni_cnt
// (counters) are node-wide, sdncni_vpn_off is per VPN and written from the networks'
// configuration, and sdncni_svc is the whole set of Service endpoints of the cluster,
// replaced wholesale by SetServiceEndpoints; none of their keys maps to an attachment.
//
// Call from the node network namespace, with no Attach running for an interface not in
// live. It keeps going past errors and returns them joined with what it removed.
func (d *Datapath) Sweep(ctx context.Context, live map[string]bool) (SweepReport, error) {
	var (
		rep     SweepReport
		errs    []error
		ifindex uint32
		ep      bpfEndpoint
		staleEP []uint32
	)
	pods := map[uint32]bpfEndpoint{}
	it := d.objs.SdncniEp.Iterate()
	for it.Next(&ifindex, &ep) {
		l, err := netlink.LinkByIndex(int(ifindex))
		if err != nil || !live[l.Attrs().Name] {
			staleEP = append(staleEP, ifindex)
			continue
		}
		if ep.Role == uint8(bpfRoleROLE_POD) {
			pods[ifindex] = ep
		}
	}
	if err := it.Err(); err != nil {
		// Without the full picture of the endpoints, destinations cannot be judged.
		return rep, fmt.Errorf("sweep: list endpoints: %w", err)
	}
	for _, k := range staleEP {
		if err := d.objs.SdncniEp.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("sweep: delete endpoint %d: %w", k, err))
			continue
		}
		rep.Endpoints++
	}

	var (
		key      bpfDstKey
		dst      bpfDst
		staleDst []bpfDstKey
	)
	liveDst := map[bpfDstKey]uint32{}
	it = d.objs.SdncniDst.Iterate()
	for it.Next(&key, &dst) {
		p, ok := pods[dst.HostIfindex]
		if !ok || p.Vpn != key.Vpn || p.Ip != key.Ip || p.Mac != dst.Mac {
			staleDst = append(staleDst, key)
			continue
		}
		liveDst[key] = dst.HostIfindex
	}
	if err := it.Err(); err != nil {
		errs = append(errs, fmt.Errorf("sweep: list destinations: %w", err))
	}
	for _, k := range staleDst {
		if err := d.objs.SdncniDst.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("sweep: delete destination %d/%s: %w", k.Vpn, addrFromBE32(k.Ip), err))
			continue
		}
		rep.Destinations++
	}
	if it.Err() != nil {
		return rep, errors.Join(errs...) // without the live destinations, pairs cannot be judged
	}
	n, err := d.sweepPairs(liveDst)
	rep.Pairs = n
	errs = append(errs, err)
	n, err = d.sweepConnections(liveDst)
	rep.Connections = n
	errs = append(errs, err)
	return rep, errors.Join(errs...)
}

// bound reports whether the pods at {vpn, a} and {vpn, b} are still the ones on the
// host veths ia and ib.
func bound(live map[bpfDstKey]uint32, vpn, a, b, ia, ib uint32) bool {
	x, okA := live[bpfDstKey{Vpn: vpn, Ip: a}]
	y, okB := live[bpfDstKey{Vpn: vpn, Ip: b}]
	return okA && okB && x == ia && y == ib
}

func (d *Datapath) sweepPairs(live map[bpfDstKey]uint32) (int, error) {
	var (
		k     bpfPolKey
		v     bpfPol
		stale []bpfPolKey
		errs  []error
	)
	it := d.objs.SdncniPol.Iterate()
	for it.Next(&k, &v) {
		if !bound(live, k.Vpn, k.Src, k.Dst, v.SrcIfindex, v.DstIfindex) {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		errs = append(errs, fmt.Errorf("sweep: list pair entries: %w", err))
	}
	n := 0
	for _, k := range stale {
		if err := d.objs.SdncniPol.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("sweep: delete pair entry: %w", err))
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

func (d *Datapath) sweepConnections(live map[bpfDstKey]uint32) (int, error) {
	var (
		k     bpfCtKey
		v     bpfCt
		stale []bpfCtKey
		errs  []error
	)
	it := d.objs.SdncniCt.Iterate()
	for it.Next(&k, &v) {
		if !bound(live, k.Vpn, k.Saddr, k.Daddr, v.SrcIfindex, v.DstIfindex) {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		errs = append(errs, fmt.Errorf("sweep: list connections: %w", err))
	}
	n := 0
	for _, k := range stale {
		if err := d.objs.SdncniCt.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("sweep: delete connection: %w", err))
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}
