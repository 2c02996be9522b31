package cniserver

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/go-logr/logr"
	"github.com/stretchr/testify/require"

	"github.com/sdncni/sdncni/pkg/attach"
	"github.com/sdncni/sdncni/pkg/cniapi"
)

// recordingManager stands in for the attachment manager in tests of the server's own
// logic (what it lets through); the manager is covered by test/e2e with the real one.
// block, when set, holds Del until it is closed.
type recordingManager struct {
	mu    sync.Mutex
	calls []string
	reqs  []attach.Request
	block chan struct{}
}

func (m *recordingManager) record(cmd string, r attach.Request) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, cmd)
	m.reqs = append(m.reqs, r)
}

func (m *recordingManager) Add(ctx context.Context, r attach.Request) (*current.Result, error) {
	m.record("ADD", r)
	return &current.Result{CNIVersion: current.ImplementedSpecVersion}, nil
}

func (m *recordingManager) Del(ctx context.Context, r attach.Request) error {
	m.record("DEL", r)
	if m.block != nil {
		select {
		case <-m.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (m *recordingManager) Check(ctx context.Context, r attach.Request) error {
	m.record("CHECK", r)
	return nil
}

func (m *recordingManager) GC(ctx context.Context, valid []attach.Key) error {
	m.record("GC", attach.Request{})
	return nil
}

func (m *recordingManager) last() (string, attach.Request, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.calls) == 0 {
		return "", attach.Request{}, 0
	}
	return m.calls[len(m.calls)-1], m.reqs[len(m.reqs)-1], len(m.calls)
}

// serve runs the real server on a unix socket in a temporary directory.
func serve(t *testing.T, mgr Manager, opts ...Option) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "cni.sock")
	l, err := Listen(sock)
	require.NoError(t, err)
	srv := New(mgr, func(context.Context) error { return nil }, 5*time.Second, logr.Discard(), opts...)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return sock
}

func do(t *testing.T, sock string, req *cniapi.Request) *cniapi.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if req.Config == nil {
		req.Config = []byte(`{"cniVersion":"1.1.0","name":"n","type":"sdncni"}`)
	}
	resp, err := cniapi.NewClient(sock).Do(ctx, req)
	require.NoError(t, err)
	return resp
}
