package ipam_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sdncni/sdncni/pkg/ipam"
)

// blocksPool is a VPN's pool on a node: blocks of 10.8.0.0/24.
func blocksPool(blocks ...string) ipam.Pool {
	p := ipam.Pool{Name: "vpn"}
	for _, b := range blocks {
		pr := netip.MustParsePrefix(b)
		last := pr.Addr()
		for range 1<<(32-pr.Bits()) - 1 {
			last = last.Next()
		}
		p.Ranges = append(p.Ranges, ipam.Range{Subnet: netip.MustParsePrefix("10.8.0.0/24"),
			Gateway: netip.MustParseAddr("10.8.0.1"), Start: pr.Addr(), End: last})
	}
	return p
}

// TestFence: a range with an allocation cannot be fenced; a fenced range gets no new
// allocation (Allocate moves on to the other block, then runs out) and no Reserve; the
// fence survives reopening the store; Unfence opens the range again.
func TestFence(t *testing.T) {
	ctx := context.Background()
	path := storePath(t)
	s := openStore(t, path)
	a, b := netip.MustParsePrefix("10.8.0.0/28"), netip.MustParsePrefix("10.8.0.16/28")
	p := blocksPool(a.String(), b.String())

	first, err := s.Allocate(ctx, p, owner("p0"))
	require.NoError(t, err)
	require.True(t, a.Contains(first.Addr.Addr()))
	require.ErrorIs(t, s.Fence(ctx, "vpn", a), ipam.ErrInUse, "a block with a pod in it")
	require.NoError(t, s.Release(ctx, "vpn", owner("p0")))
	require.NoError(t, s.Fence(ctx, "vpn", a))
	require.NoError(t, s.Fence(ctx, "vpn", a), "fencing twice")

	_, err = s.Reserve(ctx, p, owner("r"), netip.MustParseAddr("10.8.0.5"))
	require.ErrorIs(t, err, ipam.ErrOutOfRange, "reserve in a fenced block")
	for i := range 17 { // the other block has 16 addresses, then the pool is full
		got, err := s.Allocate(ctx, p, owner(fmt.Sprint("q", i)))
		if i == 16 {
			require.ErrorIs(t, err, ipam.ErrExhausted)
			break
		}
		require.NoError(t, err)
		require.True(t, b.Contains(got.Addr.Addr()), "%s is in the fenced block", got.Addr)
	}

	s2 := openStore(t, path)
	fenced, err := s2.Fenced(ctx, "vpn")
	require.NoError(t, err)
	require.Equal(t, []netip.Prefix{a}, fenced, "the fence is stored")
	_, err = s2.Allocate(ctx, blocksPool(a.String()), owner("after-reopen"))
	require.ErrorIs(t, err, ipam.ErrExhausted)

	require.NoError(t, s2.Unfence(ctx, "vpn", a))
	got, err := s2.Allocate(ctx, blocksPool(a.String()), owner("after-unfence"))
	require.NoError(t, err)
	require.True(t, a.Contains(got.Addr.Addr()))
}

// TestFenceRacesAllocate: allocations race the fencing of the block they allocate
// from, many times; either the fence fails (an address is taken) or no address of the
// fenced block is ever held afterwards.
func TestFenceRacesAllocate(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, storePath(t))
	a := netip.MustParsePrefix("10.8.0.64/28")
	p := blocksPool(a.String())
	fencedWins, allocWins := 0, 0
	for round := range 200 {
		var wg sync.WaitGroup
		var fenceErr error
		allocErrs := make([]error, 4)
		wg.Go(func() { fenceErr = s.Fence(ctx, "vpn", a) })
		for w := range allocErrs {
			wg.Go(func() {
				time.Sleep(time.Duration(round%4) * 300 * time.Microsecond) // let the fence go first at times
				_, allocErrs[w] = s.Allocate(ctx, p, owner(fmt.Sprintf("r%d-%d", round, w)))
			})
		}
		wg.Wait()
		all, err := s.List(ctx)
		require.NoError(t, err)
		held := 0
		for _, al := range all {
			if a.Contains(al.Addr.Addr()) {
				held++
			}
		}
		if fenceErr == nil {
			fencedWins++
			for _, err := range allocErrs {
				if err != nil {
					require.ErrorIs(t, err, ipam.ErrExhausted)
				}
			}
			// What was allocated before the fence must not exist: the fence checked.
			require.Zero(t, held, "round %d: the fenced block holds addresses", round)
			require.NoError(t, s.Unfence(ctx, "vpn", a))
		} else {
			allocWins++
			require.True(t, errors.Is(fenceErr, ipam.ErrInUse), "round %d: %v", round, fenceErr)
			require.NotZero(t, held)
		}
		_, err = s.GC(ctx, nil)
		require.NoError(t, err)
	}
	t.Logf("fence first %d times, an allocation first %d times", fencedWins, allocWins)
}
