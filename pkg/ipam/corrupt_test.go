package ipam

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// validStore writes a store with a few allocations and returns its bytes.
func validStore(t *testing.T, path string) []byte {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, path)
	require.NoError(t, err)
	defer s.Close()
	p := Pool{Name: "net", Ranges: []Range{{Subnet: netip.MustParsePrefix("10.0.0.0/24"), Gateway: netip.MustParseAddr("10.0.0.1")}}}
	for i := range 3 {
		_, err := s.Allocate(ctx, p, Owner{ContainerID: fmt.Sprint("c", i), IfName: "eth0"})
		require.NoError(t, err)
	}
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return data
}

// withChecksum wraps payload in an envelope with a correct checksum, so the
// file gets past the checksum and only the content check can reject it.
func withChecksum(version int, payload string) []byte {
	sum := sha256.Sum256([]byte(payload))
	return fmt.Appendf(nil, `{"version":%d,"checksum":"sha256:%s","payload":%s}`, version, hex.EncodeToString(sum[:]), payload)
}

func TestCorruptStore(t *testing.T) {
	good := validStore(t, filepath.Join(t.TempDir(), "ipam.json"))
	rec := `{"addr":"10.0.0.2/24","containerID":"a","ifName":"eth0","created":"2026-01-01T00:00:00Z"}`
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"empty file", []byte{}, ErrCorrupt},
		{"whitespace only", []byte("\n \n"), ErrCorrupt},
		{"truncated in half", good[:len(good)/2], ErrCorrupt},
		{"truncated last byte of JSON", good[:len(good)-2], ErrCorrupt},
		{"garbage", []byte("\x00\x01not json at all\xff"), ErrCorrupt},
		{"JSON of another shape", []byte(`[1,2,3]`), ErrCorrupt},
		{"trailing garbage", append(bytes.Clone(good), "xx"...), ErrCorrupt},
		{"checksum mismatch", bytes.Replace(good, []byte(`"10.0.0.3/24"`), []byte(`"10.0.0.9/24"`), 1), ErrCorrupt},
		{"checksum without algorithm", bytes.Replace(good, []byte(`"sha256:`), []byte(`"`), 1), ErrCorrupt},
		{"no payload", []byte(`{"version":1,"checksum":"sha256:00"}`), ErrCorrupt},
		{"version zero", withChecksum(0, `{"pools":{}}`), ErrCorrupt},
		{"newer version", withChecksum(2, `{"pools":{}}`), ErrUnsupportedVersion},
		{"payload without pools", withChecksum(1, `{}`), ErrCorrupt},
		{"bad address", withChecksum(1, `{"pools":{"net":{"allocations":[{"addr":"10.0.0.300/24","containerID":"a","ifName":"eth0"}]}}}`), ErrCorrupt},
		{"address held twice", withChecksum(1, `{"pools":{"net":{"allocations":[`+rec+`,`+strings.Replace(rec, `"a"`, `"b"`, 1)+`]}}}`), ErrCorrupt},
		{"owner holds two", withChecksum(1, `{"pools":{"net":{"allocations":[`+rec+`,`+strings.Replace(rec, "10.0.0.2", "10.0.0.3", 1)+`]}}}`), ErrCorrupt},
		{"record without owner", withChecksum(1, `{"pools":{"net":{"allocations":[{"addr":"10.0.0.2/24"}]}}}`), ErrCorrupt},
	}
	ctx := context.Background()
	p := Pool{Name: "net", Ranges: []Range{{Subnet: netip.MustParsePrefix("10.0.0.0/24")}}}
	o := Owner{ContainerID: "new", IfName: "eth0"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "ipam.json")

			// A Store opened while the file was fine meets the damage on
			// its next operation.
			require.NoError(t, os.WriteFile(path, good, 0o600))
			early, err := Open(ctx, path)
			require.NoError(t, err)
			t.Cleanup(func() { early.Close() })
			require.NoError(t, os.WriteFile(path, tt.data, 0o600))

			_, err = Open(ctx, path)
			require.ErrorIs(t, err, tt.want)
			require.ErrorContains(t, err, path)
			if tt.want == ErrCorrupt {
				require.ErrorContains(t, err, "left untouched", "the error tells the operator how to recover")
			}

			_, err = early.Allocate(ctx, p, o)
			require.ErrorIs(t, err, tt.want)
			_, err = early.Reserve(ctx, p, o, netip.MustParseAddr("10.0.0.50"))
			require.ErrorIs(t, err, tt.want)
			require.ErrorIs(t, early.Release(ctx, "net", Owner{ContainerID: "c0", IfName: "eth0"}), tt.want)
			_, err = early.ReleaseOwner(ctx, Owner{ContainerID: "c0", IfName: "eth0"})
			require.ErrorIs(t, err, tt.want)
			_, err = early.GC(ctx, nil)
			require.ErrorIs(t, err, tt.want)
			_, err = early.List(ctx)
			require.ErrorIs(t, err, tt.want)
			_, err = early.Get(ctx, o)
			require.ErrorIs(t, err, tt.want)
			_, _, err = early.Usage(ctx, p)
			require.ErrorIs(t, err, tt.want)

			after, err := os.ReadFile(path)
			require.NoError(t, err)
			require.Equal(t, tt.data, after, "a damaged store is never rewritten")
			entries, err := os.ReadDir(filepath.Dir(path))
			require.NoError(t, err)
			require.Len(t, entries, 2, "only the store and its lock file")
		})
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ipam.json")
	good := validStore(t, path)
	st, err := decode(path, good)
	require.NoError(t, err)
	again, err := encode(st)
	require.NoError(t, err)
	require.Equal(t, good, again, "encoding is deterministic")
	require.True(t, bytes.HasPrefix(good, []byte(`{"version":1,"checksum":"sha256:`)))
}
