package attach

import (
	"context"
	"errors"
	"fmt"

	"github.com/sdncni/sdncni/pkg/ipam"
)

// allocator is what AllocateAddress needs of the address store (*ipam.Store).
type allocator interface {
	Allocate(ctx context.Context, p ipam.Pool, o ipam.Owner) (ipam.Allocation, error)
}

// maxGrow bounds how many more blocks one ADD claims when its network's ranges are full.
const maxGrow = 8

// AllocateAddress takes an address of n for o from store, as ADD does: while n's ranges
// are full (ipam.ErrExhausted, which is also what a fenced block being given back
// answers) and networks is a Grower, it claims another range and tries again, at most
// maxGrow times. It returns the allocation and n as grown.
func AllocateAddress(ctx context.Context, store allocator, networks Networks, n Network, o ipam.Owner) (ipam.Allocation, Network, error) {
	alloc, err := store.Allocate(ctx, n.Pool(), o)
	for tries := 0; errors.Is(err, ipam.ErrExhausted) && tries < maxGrow; tries++ {
		g, ok := networks.(Grower)
		if !ok {
			break
		}
		grown, gerr := g.Grow(ctx, n)
		if gerr != nil {
			err = fmt.Errorf("%w; and no further block: %w", err, gerr)
			break
		}
		n = grown
		alloc, err = store.Allocate(ctx, n.Pool(), o)
	}
	return alloc, n, err
}
