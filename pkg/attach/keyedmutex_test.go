package attach

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestKeyedMutexSerialisesPerKey(t *testing.T) {
	var km keyedMutex
	var inA, maxA atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			defer km.lock("a")()
			n := inA.Add(1)
			for {
				m := maxA.Load()
				if n <= m || maxA.CompareAndSwap(m, n) {
					break
				}
			}
			time.Sleep(time.Millisecond)
			inA.Add(-1)
		})
	}
	// Another key is not blocked by "a".
	unlockA := km.lock("a")
	done := make(chan struct{})
	go func() { km.lock("b")(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("key b blocked by key a")
	}
	unlockA()
	wg.Wait()
	require.Equal(t, int32(1), maxA.Load())
	require.Empty(t, km.locks, "no lock entries leak")
}
