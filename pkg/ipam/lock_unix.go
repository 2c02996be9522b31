//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package ipam

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// flockFile is an flock(2) on a file that stays open for the Store's life.
// flock locks belong to the open file description, so two Stores in the same
// process exclude each other just like two processes do.
type flockFile struct{ f *os.File }

func openLockFile(path string) (*flockFile, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	return &flockFile{f: f}, nil
}

const (
	lockPollMin = 500 * time.Microsecond
	lockPollMax = 10 * time.Millisecond
)

// lock takes the lock, polling with LOCK_NB so that ctx can cancel the wait;
// a blocking flock could not be interrupted.
func (l *flockFile) lock(ctx context.Context, exclusive bool) error {
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	delay := lockPollMin
	for {
		err := syscall.Flock(int(l.f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			return fmt.Errorf("flock %s: %w", l.f.Name(), err)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("wait for lock %s: %w", l.f.Name(), ctx.Err())
		case <-t.C:
		}
		delay = min(delay*2, lockPollMax)
	}
}

func (l *flockFile) unlock() error {
	if err := syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN); err != nil {
		return fmt.Errorf("unlock %s: %w", l.f.Name(), err)
	}
	return nil
}

func (l *flockFile) close() error { return l.f.Close() }
