package ipam

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
)

// Fence closes range r of pool to new allocations, atomically with the check that no
// address in it is allocated: the first step of giving a block back, so that an
// allocation racing the release can never land in it. Allocate skips fenced addresses
// (ErrExhausted when nothing else is left) and Reserve refuses them (ErrOutOfRange). The
// fence is stored with the allocations (it survives restarts) and stays until Unfence:
// give it up only when the range is this node's again. Fencing a fenced range is a no-op.
//
// Errors: ErrInUse (an address of r is allocated; nothing changes), ErrCorrupt,
// ErrUnsupportedVersion, the context's error, or an I/O error.
func (s *Store) Fence(ctx context.Context, pool string, r netip.Prefix) error {
	r = r.Masked()
	err := s.do(ctx, true, func(st *state) (bool, error) {
		ps := st.pool(pool)
		for _, rec := range ps.Allocations {
			if r.Contains(rec.Addr.Addr()) {
				return false, fmt.Errorf("%s held by %s/%s: %w", rec.Addr.Addr(), rec.ContainerID, rec.IfName, ErrInUse)
			}
		}
		if slices.Contains(ps.Fenced, r) {
			return false, nil
		}
		ps.Fenced = append(ps.Fenced, r)
		slices.SortFunc(ps.Fenced, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("fence %s in pool %s: %w", r, pool, err)
	}
	return nil
}

// Unfence lifts every fence of pool that overlaps r (the node holds r again). What is
// not fenced is not an error.
//
// Errors: ErrCorrupt, ErrUnsupportedVersion, the context's error, or an I/O error.
func (s *Store) Unfence(ctx context.Context, pool string, r netip.Prefix) error {
	r = r.Masked()
	err := s.do(ctx, true, func(st *state) (bool, error) {
		ps := st.Pools[pool]
		if ps == nil {
			return false, nil
		}
		n := len(ps.Fenced)
		ps.Fenced = slices.DeleteFunc(ps.Fenced, func(f netip.Prefix) bool { return f.Overlaps(r) })
		return len(ps.Fenced) != n, nil
	})
	if err != nil {
		return fmt.Errorf("unfence %s in pool %s: %w", r, pool, err)
	}
	return nil
}

// Fenced returns the fenced ranges of pool, sorted.
//
// Errors: as Unfence.
func (s *Store) Fenced(ctx context.Context, pool string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	err := s.do(ctx, false, func(st *state) (bool, error) {
		if ps := st.Pools[pool]; ps != nil {
			out = slices.Clone(ps.Fenced)
		}
		return false, nil
	})
	if err != nil {
		return nil, fmt.Errorf("fenced ranges of pool %s: %w", pool, err)
	}
	return out, nil
}

// fenced reports whether a lies in a fenced range of ps.
func (ps *poolState) fenced(a netip.Addr) bool {
	for _, f := range ps.Fenced {
		if f.Contains(a) {
			return true
		}
	}
	return false
}

// unfenced returns vp without the blocks that a fence covers whole, so Allocate does not
// walk them address by address.
func (ps *poolState) unfenced(vp validPool) validPool {
	if len(ps.Fenced) == 0 {
		return vp
	}
	out := validPool{name: vp.name, blocks: make([]block, 0, len(vp.blocks))}
	for _, b := range vp.blocks {
		if !ps.coversRange(b) {
			out.blocks = append(out.blocks, b)
		}
	}
	return out
}

// coversRange reports whether one fence of ps holds all of b.
func (ps *poolState) coversRange(b block) bool {
	for _, f := range ps.Fenced {
		if f.Contains(b.start) && f.Contains(b.end) {
			return true
		}
	}
	return false
}
