package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"
)

// Store is a durable allocation store backed by one file. See the package
// documentation for the locking and durability guarantees. Create it with
// Open and release its lock file descriptor with Close.
type Store struct {
	path string
	now  func() time.Time
	// sem serialises operations of this Store and, unlike a sync.Mutex, lets
	// a waiting caller give up when its context ends.
	sem      chan struct{}
	lockPath string
	closed   bool
}

// Option configures a Store.
type Option func(*Store)

// WithClock sets the clock used for Allocation.Created (default time.Now).
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// Open opens the store at path, creating its parent directory and lock file
// ("<path>.lock") as needed. A missing store file is an empty store and is
// created by the first change. An existing file is validated now: Open
// returns ErrCorrupt (wrapped, with the path and recovery advice) or
// ErrUnsupportedVersion rather than a Store that would fail later. Open also
// removes temp files left by a writer that crashed mid-write.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	if path == "" {
		return nil, fmt.Errorf("open ipam store: empty path")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("open ipam store %s: %w", path, err)
	}
	s := &Store{path: path, lockPath: path + ".lock", now: time.Now, sem: make(chan struct{}, 1)}
	for _, o := range opts {
		o(s)
	}
	err := s.do(ctx, true, func(st *state) (bool, error) { return false, removeStaleTemps(path) })
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Path returns the store file's path.
func (s *Store) Path() string { return s.path }

// Close ends the Store: operations after Close return ErrClosed. The Store
// holds no descriptor between operations, so Close only waits for a running
// operation to finish. Close is idempotent.
func (s *Store) Close() error {
	s.sem <- struct{}{}
	defer func() { <-s.sem }()
	if s.closed {
		return nil
	}
	s.closed = true
	return nil
}

// do runs fn on the current state under both locks; when fn reports a
// change, the new state is written back before the locks are released.
func (s *Store) do(ctx context.Context, write bool, fn func(*state) (bool, error)) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.sem }()
	if s.closed {
		return ErrClosed
	}
	unlock, err := acquireFileLock(ctx, s.lockPath, write)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, unlock()) }()
	st, err := readState(s.path)
	if err != nil {
		return err
	}
	changed, err := fn(st)
	if err != nil || !changed {
		return err
	}
	if !write {
		return fmt.Errorf("ipam: read-only operation tried to change the store")
	}
	data, err := encode(st)
	if err != nil {
		return err
	}
	return writeFileAtomic(s.path, data)
}

func validOwner(o Owner) error {
	if o.ContainerID == "" || o.IfName == "" {
		return fmt.Errorf("%w: container ID %q and ifname %q are both required", ErrInvalidOwner, o.ContainerID, o.IfName)
	}
	return nil
}

// Allocate returns an address of p for o. It is idempotent: when o already
// holds an address in the pool (by Name), that allocation is returned, even
// if the pool's ranges have changed since. Otherwise the next free address
// after the pool's last allocation is taken (next-fit).
//
// Errors: ErrInvalidPool, ErrInvalidOwner, ErrExhausted, ErrCorrupt,
// ErrUnsupportedVersion, the context's error, or an I/O error.
func (s *Store) Allocate(ctx context.Context, p Pool, o Owner) (Allocation, error) {
	var a Allocation
	err := s.mutate(ctx, p, o, func(st *state, vp validPool) (changed bool, err error) {
		a, changed, err = st.allocate(vp, o, s.now())
		return changed, err
	})
	if err != nil {
		return Allocation{}, fmt.Errorf("allocate in pool %s for %s/%s: %w", p.Name, o.ContainerID, o.IfName, err)
	}
	return a, nil
}

// Reserve records addr in p for o: for restart reconciliation (the address a
// running pod already has) and static addresses. It is idempotent when o
// already holds addr. It does not move the next-fit cursor.
//
// Errors: ErrInUse (addr held by another owner, or o holds another address
// in the pool), ErrOutOfRange, ErrInvalidPool, ErrInvalidOwner, ErrCorrupt,
// ErrUnsupportedVersion, the context's error, or an I/O error.
func (s *Store) Reserve(ctx context.Context, p Pool, o Owner, addr netip.Addr) (Allocation, error) {
	var a Allocation
	err := s.mutate(ctx, p, o, func(st *state, vp validPool) (changed bool, err error) {
		a, changed, err = st.reserve(vp, o, addr.WithZone(""), s.now())
		return changed, err
	})
	if err != nil {
		return Allocation{}, fmt.Errorf("reserve %s in pool %s for %s/%s: %w", addr, p.Name, o.ContainerID, o.IfName, err)
	}
	return a, nil
}

func (s *Store) mutate(ctx context.Context, p Pool, o Owner, fn func(*state, validPool) (bool, error)) error {
	vp, err := validate(p)
	if err != nil {
		return err
	}
	if err := validOwner(o); err != nil {
		return err
	}
	return s.do(ctx, true, func(st *state) (bool, error) { return fn(st, vp) })
}

// Release frees o's address in the named pool. Releasing what is not held
// is not an error.
//
// Errors: ErrInvalidOwner, ErrCorrupt, ErrUnsupportedVersion, the context's
// error, or an I/O error.
func (s *Store) Release(ctx context.Context, pool string, o Owner) error {
	if err := validOwner(o); err != nil {
		return fmt.Errorf("release in pool %s: %w", pool, err)
	}
	_, err := s.removeWhere(ctx, func(name string, r record) bool { return name == pool && r.key() == o.key() })
	if err != nil {
		return fmt.Errorf("release in pool %s for %s/%s: %w", pool, o.ContainerID, o.IfName, err)
	}
	return nil
}

// ReleaseOwner frees o's addresses in every pool (a CNI DEL does not always
// know the network) and returns what it freed; nothing held is not an error.
//
// Errors: as Release.
func (s *Store) ReleaseOwner(ctx context.Context, o Owner) ([]Allocation, error) {
	if err := validOwner(o); err != nil {
		return nil, fmt.Errorf("release owner: %w", err)
	}
	out, err := s.removeWhere(ctx, func(_ string, r record) bool { return r.key() == o.key() })
	if err != nil {
		return nil, fmt.Errorf("release owner %s/%s: %w", o.ContainerID, o.IfName, err)
	}
	return out, nil
}

// GC frees every allocation whose (ContainerID, IfName) is not in valid and
// returns what it freed. valid must list every live owner on the node: an
// empty list frees everything.
//
// Errors: ErrCorrupt, ErrUnsupportedVersion, the context's error, or an I/O
// error.
func (s *Store) GC(ctx context.Context, valid []Owner) ([]Allocation, error) {
	keep := make(map[ownerKey]bool, len(valid))
	for _, o := range valid {
		keep[o.key()] = true
	}
	out, err := s.removeWhere(ctx, func(_ string, r record) bool { return !keep[r.key()] })
	if err != nil {
		return nil, fmt.Errorf("gc ipam store: %w", err)
	}
	return out, nil
}

func (s *Store) removeWhere(ctx context.Context, drop func(string, record) bool) ([]Allocation, error) {
	var out []Allocation
	err := s.do(ctx, true, func(st *state) (bool, error) {
		out = st.remove(drop)
		return len(out) > 0, nil
	})
	return out, err
}

// Get returns o's allocations in every pool, sorted by pool and address.
//
// Errors: ErrCorrupt, ErrUnsupportedVersion, the context's error, or an I/O
// error.
func (s *Store) Get(ctx context.Context, o Owner) ([]Allocation, error) {
	out, err := s.listWhere(ctx, func(_ string, r record) bool { return r.key() == o.key() })
	if err != nil {
		return nil, fmt.Errorf("get allocations of %s/%s: %w", o.ContainerID, o.IfName, err)
	}
	return out, nil
}

// List returns every allocation, sorted by pool and address.
//
// Errors: as Get.
func (s *Store) List(ctx context.Context) ([]Allocation, error) {
	out, err := s.listWhere(ctx, func(string, record) bool { return true })
	if err != nil {
		return nil, fmt.Errorf("list allocations: %w", err)
	}
	return out, nil
}

func (s *Store) listWhere(ctx context.Context, keep func(string, record) bool) ([]Allocation, error) {
	var out []Allocation
	err := s.do(ctx, false, func(st *state) (bool, error) {
		out = st.list(keep)
		return false, nil
	})
	return out, err
}

// Usage returns how many addresses of p's ranges are allocated and how many
// can be allocated in all (network, broadcast and gateway excluded; the total
// saturates at math.MaxInt for large IPv6 ranges). Allocations of the pool
// that lie outside its current ranges are not counted.
//
// Errors: ErrInvalidPool, ErrCorrupt, ErrUnsupportedVersion, the context's
// error, or an I/O error.
func (s *Store) Usage(ctx context.Context, p Pool) (used, total int, err error) {
	vp, err := validate(p)
	if err != nil {
		return 0, 0, fmt.Errorf("usage of pool %s: %w", p.Name, err)
	}
	err = s.do(ctx, false, func(st *state) (bool, error) {
		used = st.usage(vp)
		return false, nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("usage of pool %s: %w", p.Name, err)
	}
	return used, vp.total(), nil
}
