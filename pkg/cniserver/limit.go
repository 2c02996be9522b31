package cniserver

import (
	"context"
	"fmt"
	"time"

	"github.com/containernetworking/cni/pkg/types"
)

// limiter bounds the requests in flight per command: a slow OVSDB or a flood of ADDs
// must not pile up goroutines (and netns, netlink and OVSDB work) without bound.
type limiter struct {
	slots map[string]chan struct{}
	wait  time.Duration
}

func newLimiter(perCommand int, wait time.Duration) *limiter {
	if perCommand < 1 {
		perCommand = 1
	}
	return &limiter{wait: wait, slots: map[string]chan struct{}{
		"ADD": make(chan struct{}, perCommand), "DEL": make(chan struct{}, perCommand),
		"CHECK": make(chan struct{}, perCommand), "GC": make(chan struct{}, 1),
	}}
}

// acquire takes a slot for cmd, waiting at most l.wait, and returns its release. When
// none frees up in time it returns code 11: the runtime retries later. Commands without
// a bound (unknown ones, refused later) pass.
func (l *limiter) acquire(ctx context.Context, cmd string) (release func(), terr *types.Error) {
	slots, ok := l.slots[cmd]
	if !ok {
		return func() {}, nil
	}
	release = func() { <-slots }
	select {
	case slots <- struct{}{}:
		return release, nil
	default:
	}
	t := time.NewTimer(l.wait)
	defer t.Stop()
	select {
	case slots <- struct{}{}:
		return release, nil
	case <-t.C:
	case <-ctx.Done():
	}
	return nil, types.NewError(types.ErrTryAgainLater,
		fmt.Sprintf("too many concurrent %s requests (%d in flight)", cmd, cap(slots)),
		fmt.Sprintf("no slot freed up within %v", l.wait))
}
