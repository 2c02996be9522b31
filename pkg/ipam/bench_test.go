package ipam_test

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkAllocate measures one Allocate (lock, read, checksum, write, two
// fsyncs) against a store that already holds 100 allocations. The release
// that keeps the store at that size is not timed.
func BenchmarkAllocate(b *testing.B) {
	ctx := context.Background()
	s := openStore(b, storePath(b))
	p := pool("net", "10.0.0.0/16", "10.0.0.1")
	for i := range 100 {
		if _, err := s.Allocate(ctx, p, owner(fmt.Sprint("base-", i))); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		o := owner(fmt.Sprint("bench-", i))
		if _, err := s.Allocate(ctx, p, o); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := s.Release(ctx, p.Name, o); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
