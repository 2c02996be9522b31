//go:build linux

package datapath

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
)

// writeEntries writes ep's map entries and returns a function restoring what was there.
func writeEntries(m *bpfMaps, ep Endpoint) (undo func(), err error) {
	pod, ovs, key, dst := ep.entries()
	var undos []func()
	undo = func() {
		for i := len(undos) - 1; i >= 0; i-- {
			undos[i]()
		}
	}
	put := func(mp *ebpf.Map, k, v, old any) error {
		had := mp.Lookup(k, old) == nil
		if err := mp.Update(k, v, ebpf.UpdateAny); err != nil {
			return err
		}
		undos = append(undos, func() {
			if had {
				_ = mp.Update(k, old, ebpf.UpdateAny)
			} else {
				_ = mp.Delete(k)
			}
		})
		return nil
	}
	keepPolicyFlags(m, ep, &pod, &ovs, &key, &dst)
	var oldEP bpfEndpoint
	var oldDst bpfDst
	if err := put(m.SdncniEp, uint32(ep.HostIfIndex), &pod, &oldEP); err != nil {
		undo()
		return nil, fmt.Errorf("write endpoint %d: %w", ep.HostIfIndex, err)
	}
	var oldOVS bpfEndpoint
	if err := put(m.SdncniEp, uint32(ep.OVSIfIndex), &ovs, &oldOVS); err != nil {
		undo()
		return nil, fmt.Errorf("write endpoint %d: %w", ep.OVSIfIndex, err)
	}
	if err := put(m.SdncniDst, &key, &dst, &oldDst); err != nil {
		undo()
		return nil, fmt.Errorf("write destination %d/%s: %w", ep.VPN, ep.IP, err)
	}
	return undo, nil
}

// deleteEntries removes ep's entries, each only if it still describes ep.
func deleteEntries(m *bpfMaps, ep Endpoint) error {
	pod, ovs, key, dst := ep.entries()
	var errs []error
	for _, e := range []struct {
		ifindex uint32
		want    bpfEndpoint
	}{{uint32(ep.HostIfIndex), pod}, {uint32(ep.OVSIfIndex), ovs}} {
		var got bpfEndpoint
		if m.SdncniEp.Lookup(e.ifindex, &got) == nil && sameOwner(got, e.want) {
			if err := m.SdncniEp.Delete(e.ifindex); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				errs = append(errs, fmt.Errorf("delete endpoint %d: %w", e.ifindex, err))
			}
		}
	}
	var got bpfDst
	if m.SdncniDst.Lookup(&key, &got) == nil && got.HostIfindex == dst.HostIfindex {
		if err := m.SdncniDst.Delete(&key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("delete destination %d/%s: %w", ep.VPN, ep.IP, err))
		}
	}
	return errors.Join(errs...)
}

// sameOwner reports whether an ifindex entry belongs to the same pod (flags may differ).
func sameOwner(a, b bpfEndpoint) bool {
	return a.Vpn == b.Vpn && a.Ip == b.Ip && a.Mac == b.Mac && a.Role == b.Role && a.PeerIfindex == b.PeerIfindex
}

// policyFlags are the endpoint flags that SetPolicy owns.
const policyFlags = uint8(bpfEpFlagEP_POLICY_IN | bpfEpFlagEP_POLICY_EG)

// keepPolicyFlags: once SetPolicy has governed an endpoint (a policy flag is set on its
// present entry, which describes the same pod), the flags are SetPolicy's — the policy
// flags and the fast-path flag it turned on after writing the pod's pair entries. A
// re-Attach of the same pod (CHECK repair, restart reconciliation) keeps them instead of
// writing ep.FastPath: it never drops a policy flag (that would let a governed pod's
// traffic skip the pair entries) and does not throw a governed pod off the fast path.
func keepPolicyFlags(m *bpfMaps, ep Endpoint, pod, ovs *bpfEndpoint, key *bpfDstKey, dst *bpfDst) {
	flags, ok := governedFlags(m, ep)
	if !ok {
		return
	}
	pod.Flags, ovs.Flags, dst.Flags = flags, flags, flags
}

// governedFlags returns the flags of ep's present host-veth entry when it describes the
// same pod and carries a policy flag.
func governedFlags(m *bpfMaps, ep Endpoint) (uint8, bool) {
	pod, _, _, _ := ep.entries()
	var got bpfEndpoint
	if m.SdncniEp.Lookup(uint32(ep.HostIfIndex), &got) != nil || !sameOwner(got, pod) || got.Flags&policyFlags == 0 {
		return 0, false
	}
	return got.Flags, true
}

// checkEntries reports what differs between the maps and ep. The flags of an endpoint
// SetPolicy governs are its own (keepPolicyFlags), so they are taken as present.
func checkEntries(m *bpfMaps, ep Endpoint) error {
	pod, ovs, key, dst := ep.entries()
	keepPolicyFlags(m, ep, &pod, &ovs, &key, &dst)
	var errs []error
	for _, e := range []struct {
		ifindex uint32
		want    bpfEndpoint
	}{{uint32(ep.HostIfIndex), pod}, {uint32(ep.OVSIfIndex), ovs}} {
		var got bpfEndpoint
		if err := m.SdncniEp.Lookup(e.ifindex, &got); err != nil {
			errs = append(errs, fmt.Errorf("endpoint entry %d: %w", e.ifindex, err))
		} else if got != e.want {
			errs = append(errs, fmt.Errorf("endpoint entry %d: have %+v, want %+v", e.ifindex, got, e.want))
		}
	}
	var got bpfDst
	if err := m.SdncniDst.Lookup(&key, &got); err != nil {
		errs = append(errs, fmt.Errorf("destination entry %d/%s: %w", ep.VPN, ep.IP, err))
	} else if got != dst {
		errs = append(errs, fmt.Errorf("destination entry %d/%s: have %+v, want %+v", ep.VPN, ep.IP, got, dst))
	}
	return errors.Join(errs...)
}

// Endpoints lists the endpoints recorded in the maps, for garbage collection and
// reconciliation. Interface names are filled in when the interfaces still exist.
func (d *Datapath) Endpoints(ctx context.Context) ([]Endpoint, error) {
	var (
		ifindex uint32
		v       bpfEndpoint
		out     []Endpoint
	)
	it := d.objs.SdncniEp.Iterate()
	for it.Next(&ifindex, &v) {
		if v.Role != uint8(bpfRoleROLE_POD) {
			continue
		}
		ep := Endpoint{
			VPN: v.Vpn, HostIfIndex: int(ifindex), OVSIfIndex: int(v.PeerIfindex),
			MAC: net.HardwareAddr(append([]byte(nil), v.Mac[:]...)), IP: addrFromBE32(v.Ip),
			FastPath: v.Flags&uint8(bpfEpFlagEP_FASTPATH) != 0,
		}
		if l, err := netlink.LinkByIndex(ep.HostIfIndex); err == nil {
			ep.HostIfName = l.Attrs().Name
		}
		if l, err := netlink.LinkByIndex(ep.OVSIfIndex); err == nil {
			ep.OVSIfName = l.Attrs().Name
		}
		out = append(out, ep)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list endpoints: %w", err)
	}
	return out, nil
}
