//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package ipam

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
)

// acquireFileLock takes an flock(2) on path on a fresh open file description
// and returns the function that releases it.
//
// flock locks belong to the open file description, so each acquisition
// opens its own: two Stores in one process then exclude each other exactly
// as two processes do, and an abandoned attempt cannot interfere with a
// later one.
//
// Waiting uses a blocking flock in a goroutine rather than LOCK_NB polling:
// a poller sleeps between attempts and loses every race against a busy
// process that re-locks as soon as it unlocks, so it could starve; a blocked
// flock is woken by the kernel on unlock. When ctx ends first, the
// goroutine is left to finish: it closes the descriptor as soon as its
// flock returns, which drops the lock it may have got.
func acquireFileLock(ctx context.Context, path string, exclusive bool) (func() error, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	fd := int(f.Fd())
	release := func() error {
		// Closing the only descriptor of the open file description drops
		// the lock; the explicit unlock makes that independent of any fd a
		// child process might have inherited.
		uerr := syscall.Flock(fd, syscall.LOCK_UN)
		if cerr := f.Close(); uerr == nil {
			uerr = cerr
		}
		if uerr != nil {
			return fmt.Errorf("unlock %s: %w", path, uerr)
		}
		return nil
	}
	err = syscall.Flock(fd, how|syscall.LOCK_NB)
	if err == nil {
		return release, nil
	}
	if !errors.Is(err, syscall.EWOULDBLOCK) {
		f.Close()
		return nil, fmt.Errorf("flock %s: %w", path, err)
	}
	done := make(chan error, 1)
	go func() { done <- flockRetry(fd, how) }()
	select {
	case err := <-done:
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("flock %s: %w", path, err)
		}
		return release, nil
	case <-ctx.Done():
		go func() {
			if err := <-done; err == nil {
				_ = f.Close() // drops the lock the abandoned flock took
				return
			}
			_ = f.Close()
		}()
		return nil, fmt.Errorf("wait for lock %s: %w", path, ctx.Err())
	}
}

func flockRetry(fd, how int) error {
	for {
		err := syscall.Flock(fd, how)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}
