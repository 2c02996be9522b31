package ovs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/ovn-kubernetes/libovsdb/client"
	"github.com/ovn-kubernetes/libovsdb/model"
	"github.com/ovn-kubernetes/libovsdb/ovsdb"
)

const (
	// reconnectTimeout bounds one reconnection attempt.
	reconnectTimeout = 5 * time.Second
	// cacheWait bounds how long a write waits for its own update to reach the cache.
	cacheWait = 10 * time.Second
	pollEvery = 10 * time.Millisecond
)

// ConnOption changes how a database client connects.
type ConnOption func(*connOptions)

type connOptions struct{ tls TLS }

// WithTLS connects over "ssl:" endpoints with t's key, certificate and CA.
func WithTLS(t TLS) ConnOption { return func(o *connOptions) { o.tls = t } }

// connect opens a client to endpoint with reconnection on, and monitors the given tables.
func connect(ctx context.Context, endpoint string, dbModel model.ClientDBModel, log logr.Logger,
	tables func(client.Client) []client.MonitorOption, opts ...ConnOption) (client.Client, error) {
	var co connOptions
	for _, o := range opts {
		o(&co)
	}
	copts := []client.Option{
		client.WithReconnect(reconnectTimeout, &retryForever{}),
		client.WithLogger(&log),
	}
	// "a,b,c": the remotes of a clustered database (ovn-remote's syntax).
	for _, e := range strings.Split(endpoint, ",") {
		if err := checkEndpoint(e, co.tls); err != nil {
			return nil, err
		}
		copts = append(copts, client.WithEndpoint(e))
	}
	if co.tls.Enabled() {
		cfg, err := co.tls.Config()
		if err != nil {
			return nil, err
		}
		copts = append(copts, client.WithTLSConfig(cfg))
	}
	c, err := client.NewOVSDBClient(dbModel, copts...)
	if err != nil {
		return nil, fmt.Errorf("new client for %s: %w", endpoint, err)
	}
	if err := c.Connect(ctx); err != nil {
		return nil, fmt.Errorf("connect %s: %w", endpoint, err)
	}
	if _, err := c.Monitor(ctx, c.NewMonitor(tables(c)...)); err != nil {
		c.Close()
		return nil, fmt.Errorf("monitor %s: %w", endpoint, err)
	}
	return c, nil
}

// transact runs ops as one transaction and checks every operation's result. Operation
// errors are joined into the returned error so callers can errors.As them
// (*ovsdb.ConstraintViolation when a unique index is hit).
func transact(ctx context.Context, c client.Client, ops []ovsdb.Operation) ([]ovsdb.OperationResult, error) {
	// A request already sent may still commit after ctx ends; don't send one for a
	// caller that has given up.
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("ovsdb transact: %w", err)
	}
	res, err := c.Transact(ctx, ops...)
	if err != nil {
		return nil, fmt.Errorf("ovsdb transact: %w", err)
	}
	opErrs, err := ovsdb.CheckOperationResults(res, ops)
	if err != nil {
		if len(opErrs) == 0 {
			return res, fmt.Errorf("ovsdb transact: %w", err)
		}
		errs := make([]error, len(opErrs))
		for i, e := range opErrs {
			errs[i] = e
		}
		return res, fmt.Errorf("ovsdb transact: %w", errors.Join(errs...))
	}
	return res, nil
}

// createOps returns insert operations for models of any tables (libovsdb's Create takes
// one table per call).
func createOps(c client.Client, models ...model.Model) ([]ovsdb.Operation, error) {
	var ops []ovsdb.Operation
	for _, m := range models {
		o, err := c.Create(m)
		if err != nil {
			return nil, err
		}
		ops = append(ops, o...)
	}
	return ops, nil
}

// isConstraintViolation reports whether err comes from a unique index clash, the mark of a
// concurrent writer that created the same row first.
func isConstraintViolation(err error) bool {
	var cv *ovsdb.ConstraintViolation
	return errors.As(err, &cv)
}

// waitUntil polls cond until it holds, ctx ends, or cacheWait passes. cond gets the
// bounded context: cache reads block while the client reconnects.
func waitUntil(ctx context.Context, what string, cond func(context.Context) bool) error {
	ctx, cancel := context.WithTimeout(ctx, cacheWait)
	defer cancel()
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for !cond(ctx) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// retryForever is the reconnection backoff: 50 ms doubling to 1 s, never giving up
// (libovsdb panics when its backoff gives up).
type retryForever struct {
	mu   sync.Mutex
	next time.Duration
}

func (b *retryForever) NextBackOff() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.next == 0 {
		b.next = 50 * time.Millisecond
	}
	d := b.next
	b.next = min(2*b.next, time.Second)
	return d
}

func (b *retryForever) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.next = 0
}

// newTicker is the poll interval for waits on values other daemons write.
func newTicker() *time.Ticker { return time.NewTicker(20 * time.Millisecond) }
