package ipam_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sdncni/sdncni/pkg/ipam"
)

// sharedPool is the pool every process of TestConcurrentProcesses uses:
// 509 allocatable addresses.
var sharedPool = pool("shared", "10.1.0.0/23", "10.1.0.1")

// allocateMany runs n Allocate calls for owners prefix-0..prefix-(n-1) on
// workers goroutines and returns the first error.
func allocateMany(ctx context.Context, s *ipam.Store, p ipam.Pool, prefix string, n, workers int) error {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	jobs := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				if _, err := s.Allocate(ctx, p, owner(fmt.Sprintf("%s-%d", prefix, i))); err != nil {
					errs <- err
				}
			}
		})
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	close(errs)
	return <-errs
}

func requireDistinct(t *testing.T, all []ipam.Allocation, want int) {
	t.Helper()
	require.Len(t, all, want)
	seen := make(map[netip.Addr]string, len(all))
	for _, a := range all {
		prev, dup := seen[a.Addr.Addr()]
		require.False(t, dup, "address %s handed to %s and %s", a.Addr, prev, a.Owner.ContainerID)
		seen[a.Addr.Addr()] = a.Owner.ContainerID
	}
}

func TestConcurrentGoroutines(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	path := storePath(t)
	// Two Stores on one file in one process: the in-process lock covers each
	// Store, the flock covers the pair.
	s1, s2 := openStore(t, path), openStore(t, path)
	p := pool("net", "10.2.0.0/24", "10.2.0.1")
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, s := range []*ipam.Store{s1, s2} {
		wg.Go(func() { errs[i] = allocateMany(ctx, s, p, fmt.Sprint("s", i), 60, 30) })
	}
	wg.Wait()
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])

	all, err := s1.List(ctx)
	require.NoError(t, err)
	requireDistinct(t, all, 120)
	used, total, err := s2.Usage(ctx, p)
	require.NoError(t, err)
	require.Equal(t, []int{120, 253}, []int{used, total})
}

const (
	helperEnv       = "SDNCNI_IPAM_TEST_HELPER"
	helperPathEnv   = "SDNCNI_IPAM_TEST_PATH"
	helperPrefixEnv = "SDNCNI_IPAM_TEST_PREFIX"
	helperCountEnv  = "SDNCNI_IPAM_TEST_COUNT"
	helperSyncEnv   = "SDNCNI_IPAM_TEST_SYNC"
)

// waitFile polls for path until it exists or ctx ends.
func waitFile(ctx context.Context, path string) error {
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w", path, ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}

// TestHelperProcess is not a test: TestConcurrentProcesses runs the test
// binary again with this test selected and helperEnv set, and it then
// allocates into the shared store as a separate process. Without helperEnv it
// returns at once (it does not Skip, so that nothing shows as skipped in CI).
func TestHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		return
	}
	n, err := strconv.Atoi(os.Getenv(helperCountEnv))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	s, err := ipam.Open(ctx, os.Getenv(helperPathEnv))
	require.NoError(t, err)
	defer s.Close()
	// Tell the parent this process is ready, then wait for the common start
	// so that the three processes really allocate at the same time.
	syncDir, prefix := os.Getenv(helperSyncEnv), os.Getenv(helperPrefixEnv)
	require.NoError(t, os.WriteFile(filepath.Join(syncDir, "ready-"+prefix), nil, 0o600))
	require.NoError(t, waitFile(ctx, filepath.Join(syncDir, "go")))
	require.NoError(t, allocateMany(ctx, s, sharedPool, prefix, n, 4))
}

func TestConcurrentProcesses(t *testing.T) {
	const perProcess = 60
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	path := storePath(t)
	s := openStore(t, path)
	syncDir := t.TempDir()

	type child struct {
		cmd *exec.Cmd
		out *syncBuffer
	}
	var children []child
	for _, prefix := range []string{"p1", "p2"} {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), helperEnv+"=1", helperPathEnv+"="+path, helperPrefixEnv+"="+prefix,
			helperCountEnv+"="+strconv.Itoa(perProcess), helperSyncEnv+"="+syncDir)
		out := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		cmd.WaitDelay = 5 * time.Second
		require.NoError(t, cmd.Start())
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				cmd.Process.Kill()
				cmd.Wait()
			}
		})
		children = append(children, child{cmd, out})
	}
	for _, prefix := range []string{"p1", "p2"} {
		require.NoError(t, waitFile(ctx, filepath.Join(syncDir, "ready-"+prefix)))
	}
	require.NoError(t, os.WriteFile(filepath.Join(syncDir, "go"), nil, 0o600))
	parentErr := allocateMany(ctx, s, sharedPool, "parent", perProcess, 4)
	for _, c := range children {
		require.NoError(t, c.cmd.Wait(), "helper process output:\n%s", c.out)
	}
	require.NoError(t, parentErr)

	all, err := s.List(ctx)
	require.NoError(t, err)
	requireDistinct(t, all, 3*perProcess)
	byPrefix := map[string]int{}
	for _, a := range all {
		prefix, _, ok := strings.Cut(a.Owner.ContainerID, "-")
		require.True(t, ok, a.Owner.ContainerID)
		byPrefix[prefix]++
	}
	// How often the owner's process changes along the address order: a
	// measure of how much the three processes really interleaved.
	switches := 0
	for i := 1; i < len(all); i++ {
		a, _, _ := strings.Cut(all[i-1].Owner.ContainerID, "-")
		b, _, _ := strings.Cut(all[i].Owner.ContainerID, "-")
		if a != b {
			switches++
		}
	}
	t.Logf("%d allocations by 3 processes, %d process switches along the address order", len(all), switches)
	require.Equal(t, map[string]int{"p1": perProcess, "p2": perProcess, "parent": perProcess}, byPrefix)
}

// syncBuffer collects a child's output; the exec package writes to it from
// its own goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
