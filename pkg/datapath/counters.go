//go:build linux

package datapath

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// reasonNames reads the counter names from the programs' own BTF (enum reason), so
// the names are single-sourced in bpf/datapath.h: REASON_TO_OVS_VLAN → "to_ovs_vlan".
func reasonNames(spec *ebpf.CollectionSpec) ([]string, error) {
	var enum *btf.Enum
	if err := spec.Types.TypeByName("reason", &enum); err != nil {
		return nil, fmt.Errorf("find enum reason: %w", err)
	}
	names := make([]string, bpfReasonREASON_MAX)
	for _, v := range enum.Values {
		if v.Value >= uint64(len(names)) {
			continue // REASON_MAX
		}
		names[v.Value] = strings.ToLower(strings.TrimPrefix(v.Name, "REASON_"))
	}
	for i, n := range names {
		if n == "" {
			return nil, fmt.Errorf("enum reason: no name for %d", i)
		}
	}
	return names, nil
}

// Counters returns the packet counters of both programs summed over all CPUs, by
// reason ("redirect_fast", "from_ovs", "to_ovs_spoofed", …). Every packet a program
// sees counts under exactly one reason.
func (d *Datapath) Counters(ctx context.Context) (map[string]uint64, error) {
	return readCounters(d.objs.SdncniCnt, d.names)
}

func readCounters(m *ebpf.Map, names []string) (map[string]uint64, error) {
	out := make(map[string]uint64, len(names))
	var perCPU []uint64
	for i, name := range names {
		if err := m.Lookup(uint32(i), &perCPU); err != nil {
			return nil, fmt.Errorf("read counter %s: %w", name, err)
		}
		var sum uint64
		for _, v := range perCPU {
			sum += v
		}
		out[name] = sum
	}
	return out, nil
}

// SetFastPath switches the fast path on or off for every VPN at once. Off, every packet
// goes through OVS; running pods need no restart.
func (d *Datapath) SetFastPath(ctx context.Context, on bool) error {
	cfg := bpfConfig{}
	if on {
		cfg.Fastpath = 1
	}
	if err := d.objs.SdncniCfg.Update(uint32(0), &cfg, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("set fast path %t: %w", on, err)
	}
	return nil
}

// SetVPNFastPath switches the fast path on or off for one VPN. The global switch
// (SetFastPath) still applies.
func (d *Datapath) SetVPNFastPath(ctx context.Context, vpn uint32, on bool) error {
	var err error
	if on {
		err = d.objs.SdncniVpnOff.Delete(vpn)
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			err = nil
		}
	} else {
		err = d.objs.SdncniVpnOff.Update(vpn, uint8(1), ebpf.UpdateAny)
	}
	if err != nil {
		return fmt.Errorf("set fast path %t for vpn %d: %w", on, vpn, err)
	}
	return nil
}

// PolicyHandoffs returns, by VPN ID, the packets from_pod handed to OVS because a
// NetworkPolicy governs them and the fast path did not know them to be allowed (the
// to_ovs_policy counter, by the sender's VPN), summed over all CPUs. A VPN whose pods
// never had such a packet is absent.
func (d *Datapath) PolicyHandoffs(ctx context.Context) (map[uint32]uint64, error) {
	out := map[uint32]uint64{}
	var (
		vpn    uint32
		perCPU []uint64
	)
	it := d.objs.SdncniPolOvs.Iterate()
	for it.Next(&vpn, &perCPU) {
		var sum uint64
		for _, v := range perCPU {
			sum += v
		}
		out[vpn] = sum
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read policy hand-offs: %w", err)
	}
	return out, nil
}
