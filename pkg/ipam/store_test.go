package ipam_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sdncni/sdncni/pkg/ipam"
)

func pool(name, subnet, gw string) ipam.Pool {
	r := ipam.Range{Subnet: netip.MustParsePrefix(subnet)}
	if gw != "" {
		r.Gateway = netip.MustParseAddr(gw)
	}
	return ipam.Pool{Name: name, Ranges: []ipam.Range{r}}
}

func owner(id string) ipam.Owner {
	return ipam.Owner{ContainerID: id, IfName: "eth0", PodNamespace: "ns", PodName: "pod-" + id}
}

func openStore(t testing.TB, path string) *ipam.Store {
	t.Helper()
	s, err := ipam.Open(context.Background(), path)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

func storePath(t testing.TB) string {
	return filepath.Join(t.TempDir(), "state", "ipam.json")
}

func TestAllocateDurableAndIdempotent(t *testing.T) {
	ctx := context.Background()
	path := storePath(t)
	s := openStore(t, path)
	p1 := pool("net1", "10.0.0.0/24", "10.0.0.1")
	p2 := pool("net2", "10.0.0.0/24", "10.0.0.1") // overlapping CIDRs in different pools are fine

	a, err := s.Allocate(ctx, p1, owner("a"))
	require.NoError(t, err)
	require.Equal(t, netip.MustParsePrefix("10.0.0.2/24"), a.Addr)
	require.Equal(t, netip.MustParseAddr("10.0.0.1"), a.Gateway)
	require.Equal(t, "net1", a.Pool)
	require.Equal(t, owner("a"), a.Owner)
	require.False(t, a.Created.IsZero())

	b, err := s.Allocate(ctx, p1, owner("b"))
	require.NoError(t, err)
	require.Equal(t, netip.MustParsePrefix("10.0.0.3/24"), b.Addr)
	c, err := s.Allocate(ctx, p2, owner("a"))
	require.NoError(t, err)
	require.Equal(t, netip.MustParsePrefix("10.0.0.2/24"), c.Addr)

	again, err := s.Allocate(ctx, p1, owner("a"))
	require.NoError(t, err)
	require.Equal(t, a, again)

	before, err := s.List(ctx)
	require.NoError(t, err)
	require.Len(t, before, 3)
	require.NoError(t, s.Close())
	_, err = s.List(ctx)
	require.ErrorIs(t, err, ipam.ErrClosed)

	s2 := openStore(t, path)
	after, err := s2.List(ctx)
	require.NoError(t, err)
	require.Equal(t, before, after)
	again, err = s2.Allocate(ctx, p1, owner("a"))
	require.NoError(t, err)
	require.True(t, a.Created.Equal(again.Created))
	require.Equal(t, a.Addr, again.Addr)

	got, err := s2.Get(ctx, owner("a"))
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, []string{"net1", "net2"}, []string{got[0].Pool, got[1].Pool})

	// The next-fit cursor survives a reopen: after a release, the freed
	// address is not handed out again at once.
	require.NoError(t, s2.Release(ctx, "net1", owner("a")))
	s3 := openStore(t, path)
	d, err := s3.Allocate(ctx, p1, owner("d"))
	require.NoError(t, err)
	require.Equal(t, netip.MustParsePrefix("10.0.0.4/24"), d.Addr)
}

func TestNextFitWrapsAround(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, storePath(t))
	p := pool("net", "10.0.0.0/29", "10.0.0.1") // .2-.6
	var got []string
	for i := range 5 {
		a, err := s.Allocate(ctx, p, owner(fmt.Sprint(i)))
		require.NoError(t, err)
		got = append(got, a.Addr.Addr().String())
	}
	require.Equal(t, []string{"10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"}, got)
	_, err := s.Allocate(ctx, p, owner("x"))
	require.ErrorIs(t, err, ipam.ErrExhausted)
	require.ErrorContains(t, err, "net")

	require.NoError(t, s.Release(ctx, "net", owner("1"))) // .3
	require.NoError(t, s.Release(ctx, "net", owner("3"))) // .5
	a, err := s.Allocate(ctx, p, owner("x"))
	require.NoError(t, err)
	require.Equal(t, "10.0.0.3", a.Addr.Addr().String(), "wraps to the first free address after the cursor (.6)")
	a, err = s.Allocate(ctx, p, owner("y"))
	require.NoError(t, err)
	require.Equal(t, "10.0.0.5", a.Addr.Addr().String())

	used, total, err := s.Usage(ctx, p)
	require.NoError(t, err)
	require.Equal(t, 5, used)
	require.Equal(t, 5, total)
}

func TestReleaseIdempotent(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, storePath(t))
	p := pool("net", "10.0.0.0/24", "10.0.0.1")
	_, err := s.Allocate(ctx, p, owner("a"))
	require.NoError(t, err)
	_, err = s.Allocate(ctx, pool("other", "10.9.0.0/24", ""), owner("a"))
	require.NoError(t, err)

	require.NoError(t, s.Release(ctx, "net", owner("a")))
	require.NoError(t, s.Release(ctx, "net", owner("a")))
	require.NoError(t, s.Release(ctx, "no-such-pool", owner("a")))
	got, err := s.Get(ctx, owner("a"))
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, "other", got[0].Pool)

	_, err = s.Allocate(ctx, p, owner("b"))
	require.NoError(t, err)
	_, err = s.Allocate(ctx, p, ipam.Owner{ContainerID: "a", IfName: "net1"})
	require.NoError(t, err)
	rel, err := s.ReleaseOwner(ctx, owner("a"))
	require.NoError(t, err)
	require.Len(t, rel, 1, "only (a, eth0), not (a, net1)")
	require.Equal(t, "other", rel[0].Pool)
	rel, err = s.ReleaseOwner(ctx, owner("a"))
	require.NoError(t, err)
	require.Empty(t, rel)

	require.ErrorIs(t, s.Release(ctx, "net", ipam.Owner{ContainerID: "a"}), ipam.ErrInvalidOwner)
	_, err = s.Allocate(ctx, p, ipam.Owner{IfName: "eth0"})
	require.ErrorIs(t, err, ipam.ErrInvalidOwner)
	_, err = s.Allocate(ctx, ipam.Pool{Name: "bad"}, owner("a"))
	require.ErrorIs(t, err, ipam.ErrInvalidPool)
}

func TestGC(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, storePath(t))
	p1 := pool("net1", "10.0.0.0/24", "10.0.0.1")
	p2 := pool("net2", "10.1.0.0/24", "10.1.0.1")
	for _, id := range []string{"a", "b", "c", "d"} {
		_, err := s.Allocate(ctx, p1, owner(id))
		require.NoError(t, err)
	}
	_, err := s.Allocate(ctx, p2, owner("a"))
	require.NoError(t, err)
	_, err = s.Allocate(ctx, p2, owner("e"))
	require.NoError(t, err)

	// IfName is part of the key: (b, net1) does not keep (b, eth0).
	valid := []ipam.Owner{owner("a"), owner("c"), {ContainerID: "b", IfName: "net1"}}
	rel, err := s.GC(ctx, valid)
	require.NoError(t, err)
	var gone []string
	for _, a := range rel {
		gone = append(gone, a.Pool+"/"+a.Owner.ContainerID)
	}
	require.Equal(t, []string{"net1/b", "net1/d", "net2/e"}, gone)

	left, err := s.List(ctx)
	require.NoError(t, err)
	require.Len(t, left, 3)
	rel, err = s.GC(ctx, valid)
	require.NoError(t, err)
	require.Empty(t, rel)
}

func TestReserve(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, storePath(t))
	p := pool("net", "10.0.0.0/24", "10.0.0.1")
	ip := netip.MustParseAddr

	a, err := s.Reserve(ctx, p, owner("a"), ip("10.0.0.2"))
	require.NoError(t, err)
	require.Equal(t, netip.MustParsePrefix("10.0.0.2/24"), a.Addr)
	again, err := s.Reserve(ctx, p, owner("a"), ip("10.0.0.2"))
	require.NoError(t, err)
	require.Equal(t, a, again)

	_, err = s.Reserve(ctx, p, owner("b"), ip("10.0.0.2"))
	require.ErrorIs(t, err, ipam.ErrInUse)
	_, err = s.Reserve(ctx, p, owner("a"), ip("10.0.0.9"))
	require.ErrorIs(t, err, ipam.ErrInUse, "owner already holds .2")
	for _, bad := range []string{"10.0.0.0", "10.0.0.1", "10.0.0.255", "10.0.1.5", "2001:db8::1"} {
		_, err = s.Reserve(ctx, p, owner("b"), ip(bad))
		require.ErrorIs(t, err, ipam.ErrOutOfRange, bad)
	}

	// Reserve does not move the cursor but Allocate skips reserved addresses.
	_, err = s.Reserve(ctx, p, owner("c"), ip("10.0.0.3"))
	require.NoError(t, err)
	d, err := s.Allocate(ctx, p, owner("d"))
	require.NoError(t, err)
	require.Equal(t, "10.0.0.4", d.Addr.Addr().String())
	// Allocate for an owner that reserved returns the reservation.
	c, err := s.Allocate(ctx, p, owner("c"))
	require.NoError(t, err)
	require.Equal(t, "10.0.0.3", c.Addr.Addr().String())

	used, total, err := s.Usage(ctx, p)
	require.NoError(t, err)
	require.Equal(t, 3, used)
	require.Equal(t, 253, total)
}

func TestPerNodeBlocks(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, storePath(t))
	cidr := netip.MustParsePrefix("10.8.0.0/16")
	gw := netip.MustParseAddr("10.8.0.1")
	block := func(start, end string) ipam.Range {
		return ipam.Range{Subnet: cidr, Gateway: gw, Start: netip.MustParseAddr(start), End: netip.MustParseAddr(end)}
	}
	p := ipam.Pool{Name: "vpn-a", Ranges: []ipam.Range{block("10.8.4.0", "10.8.4.3")}}
	for i := range 4 {
		a, err := s.Allocate(ctx, p, owner(fmt.Sprint(i)))
		require.NoError(t, err)
		require.Equal(t, 16, a.Addr.Bits(), "the address carries the VPN's prefix length, not the block's")
		require.Equal(t, gw, a.Gateway)
	}
	_, err := s.Allocate(ctx, p, owner("x"))
	require.ErrorIs(t, err, ipam.ErrExhausted)

	// The node claims a second block; the pool grows without touching the
	// allocations already made.
	p.Ranges = append(p.Ranges, block("10.8.9.0", "10.8.9.3"))
	a, err := s.Allocate(ctx, p, owner("x"))
	require.NoError(t, err)
	require.Equal(t, "10.8.9.0/16", a.Addr.String())
	used, total, err := s.Usage(ctx, p)
	require.NoError(t, err)
	require.Equal(t, []int{5, 8}, []int{used, total})
}

func TestContext(t *testing.T) {
	path := storePath(t)
	s := openStore(t, path)
	p := pool("net", "10.0.0.0/24", "")

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Allocate(cancelled, p, owner("a"))
	require.ErrorIs(t, err, context.Canceled)

	// Another holder of the flock (as a second process would be) makes the
	// operation wait; the deadline ends the wait.
	f, err := os.OpenFile(path+".lock", os.O_RDWR, 0)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	require.NoError(t, syscall.Flock(int(f.Fd()), syscall.LOCK_EX))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = s.Allocate(ctx, p, owner("a"))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 5*time.Second)

	require.NoError(t, syscall.Flock(int(f.Fd()), syscall.LOCK_UN))
	_, err = s.Allocate(context.Background(), p, owner("a"))
	require.NoError(t, err)
}

func TestOpenCreatesNothingUntilFirstChange(t *testing.T) {
	ctx := context.Background()
	path := storePath(t)
	s := openStore(t, path)
	all, err := s.List(ctx)
	require.NoError(t, err)
	require.Empty(t, all)
	_, err = os.Stat(path)
	require.ErrorIs(t, err, os.ErrNotExist)

	// A temp file left by a writer that crashed before its rename is removed.
	stale := path + ".tmp-123"
	require.NoError(t, os.WriteFile(stale, []byte("half"), 0o600))
	openStore(t, path)
	_, err = os.Stat(stale)
	require.ErrorIs(t, err, os.ErrNotExist)
}
