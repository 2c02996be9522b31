package ipamtest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/sdncni/sdncni/pkg/ipam"
)

// NewStore opens an empty Store in t.TempDir() and closes it when the test
// ends. The file's path is s.Path().
func NewStore(t testing.TB) *ipam.Store {
	t.Helper()
	s, err := ipam.Open(context.Background(), filepath.Join(t.TempDir(), "ipam.json"))
	if err != nil {
		t.Fatalf("open ipam store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
