package ipam

import (
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// state is the decoded payload of the store file. Its methods are the pure
// logic of every operation; Store wraps them in locking and file I/O.
type state struct {
	Pools map[string]*poolState `json:"pools"`
}

type poolState struct {
	// Last is the address most recently handed out by Allocate: the next-fit
	// cursor. It survives Release so a freed address is not reused at once.
	Last        netip.Addr `json:"last,omitzero"`
	Allocations []record   `json:"allocations"`
	// Fenced are ranges of the pool that nothing may be allocated in (Fence): blocks
	// this node is giving back, or gave back, until it claims them again (Unfence).
	Fenced []netip.Prefix `json:"fenced,omitempty"`
}

type record struct {
	Addr         netip.Prefix `json:"addr"`
	Gateway      netip.Addr   `json:"gateway,omitzero"`
	ContainerID  string       `json:"containerID"`
	IfName       string       `json:"ifName"`
	PodNamespace string       `json:"podNamespace,omitempty"`
	PodName      string       `json:"podName,omitempty"`
	Created      time.Time    `json:"created"`
}

func newState() *state { return &state{Pools: map[string]*poolState{}} }

func (r record) allocation(pool string) Allocation {
	return Allocation{
		Pool:    pool,
		Addr:    r.Addr,
		Gateway: r.Gateway,
		Owner: Owner{
			ContainerID: r.ContainerID, IfName: r.IfName,
			PodNamespace: r.PodNamespace, PodName: r.PodName,
		},
		Created: r.Created,
	}
}

func (r record) key() ownerKey { return ownerKey{r.ContainerID, r.IfName} }

// check rejects contents that a correct writer never produces; a store that
// lies about who holds what must not be used to hand out addresses.
func (st *state) check() error {
	if st.Pools == nil {
		return fmt.Errorf("no pools object")
	}
	for name, ps := range st.Pools {
		if ps == nil {
			return fmt.Errorf("pool %q: null", name)
		}
		addrs := make(map[netip.Addr]bool, len(ps.Allocations))
		owners := make(map[ownerKey]bool, len(ps.Allocations))
		for _, r := range ps.Allocations {
			switch {
			case !r.Addr.IsValid():
				return fmt.Errorf("pool %q: record without address", name)
			case r.ContainerID == "" || r.IfName == "":
				return fmt.Errorf("pool %q: %s: record without owner", name, r.Addr)
			case addrs[r.Addr.Addr()]:
				return fmt.Errorf("pool %q: address %s held twice", name, r.Addr.Addr())
			case owners[r.key()]:
				return fmt.Errorf("pool %q: owner %s/%s holds two addresses", name, r.ContainerID, r.IfName)
			}
			addrs[r.Addr.Addr()] = true
			owners[r.key()] = true
		}
	}
	return nil
}

func (st *state) pool(name string) *poolState {
	ps := st.Pools[name]
	if ps == nil {
		ps = &poolState{}
		st.Pools[name] = ps
	}
	return ps
}

func (ps *poolState) find(k ownerKey) int {
	return slices.IndexFunc(ps.Allocations, func(r record) bool { return r.key() == k })
}

func (ps *poolState) holder(a netip.Addr) int {
	return slices.IndexFunc(ps.Allocations, func(r record) bool { return r.Addr.Addr() == a })
}

func newRecord(addr netip.Addr, b block, o Owner, now time.Time) record {
	return record{
		Addr: netip.PrefixFrom(addr, b.subnet.Bits()), Gateway: b.gateway,
		ContainerID: o.ContainerID, IfName: o.IfName,
		PodNamespace: o.PodNamespace, PodName: o.PodName,
		Created: now.UTC(),
	}
}

// allocate returns the owner's existing allocation in the pool or a new one.
func (st *state) allocate(vp validPool, o Owner, now time.Time) (Allocation, bool, error) {
	ps := st.pool(vp.name)
	if i := ps.find(o.key()); i >= 0 {
		return ps.Allocations[i].allocation(vp.name), false, nil
	}
	used := make(map[netip.Addr]struct{}, len(ps.Allocations))
	for _, r := range ps.Allocations {
		used[r.Addr.Addr()] = struct{}{}
	}
	open := ps.unfenced(vp)
	var (
		addr netip.Addr
		b    block
		ok   bool
	)
	if len(open.blocks) > 0 {
		addr, b, ok = open.nextFit(ps.Last, func(a netip.Addr) bool { _, u := used[a]; return u || ps.fenced(a) })
	}
	if !ok {
		return Allocation{}, false, fmt.Errorf("pool %s (%d addresses): %w", vp.name, vp.total(), ErrExhausted)
	}
	r := newRecord(addr, b, o, now)
	ps.Allocations = append(ps.Allocations, r)
	ps.Last = addr
	return r.allocation(vp.name), true, nil
}

// reserve records addr for the owner without moving the next-fit cursor.
func (st *state) reserve(vp validPool, o Owner, addr netip.Addr, now time.Time) (Allocation, bool, error) {
	b, ok := vp.blockFor(addr)
	if !ok {
		return Allocation{}, false, fmt.Errorf("%s in pool %s: %w", addr, vp.name, ErrOutOfRange)
	}
	ps := st.pool(vp.name)
	if ps.fenced(addr) {
		return Allocation{}, false, fmt.Errorf("%s in pool %s is in a fenced range (a block being given back): %w",
			addr, vp.name, ErrOutOfRange)
	}
	if i := ps.holder(addr); i >= 0 {
		r := ps.Allocations[i]
		if r.key() == o.key() {
			return r.allocation(vp.name), false, nil
		}
		return Allocation{}, false, fmt.Errorf("%s in pool %s held by %s/%s: %w", addr, vp.name, r.ContainerID, r.IfName, ErrInUse)
	}
	if i := ps.find(o.key()); i >= 0 {
		return Allocation{}, false, fmt.Errorf("owner %s/%s already holds %s in pool %s: %w",
			o.ContainerID, o.IfName, ps.Allocations[i].Addr.Addr(), vp.name, ErrInUse)
	}
	r := newRecord(addr, b, o, now)
	ps.Allocations = append(ps.Allocations, r)
	return r.allocation(vp.name), true, nil
}

// remove deletes every record for which drop returns true and returns them.
func (st *state) remove(drop func(pool string, r record) bool) []Allocation {
	var out []Allocation
	for name, ps := range st.Pools {
		kept := ps.Allocations[:0]
		for _, r := range ps.Allocations {
			if drop(name, r) {
				out = append(out, r.allocation(name))
				continue
			}
			kept = append(kept, r)
		}
		ps.Allocations = kept
	}
	sortAllocations(out)
	return out
}

func (st *state) list(keep func(pool string, r record) bool) []Allocation {
	var out []Allocation
	for name, ps := range st.Pools {
		for _, r := range ps.Allocations {
			if keep(name, r) {
				out = append(out, r.allocation(name))
			}
		}
	}
	sortAllocations(out)
	return out
}

func (st *state) usage(vp validPool) int {
	ps := st.Pools[vp.name]
	if ps == nil {
		return 0
	}
	n := 0
	for _, r := range ps.Allocations {
		if _, ok := vp.blockFor(r.Addr.Addr()); ok {
			n++
		}
	}
	return n
}
