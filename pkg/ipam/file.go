package ipam

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// formatVersion is the version of the store file this code writes and reads.
const formatVersion = 1

const checksumPrefix = "sha256:"

// envelope is the store file: the payload is kept as the exact bytes that
// were checksummed, so the check does not depend on re-encoding.
type envelope struct {
	Version  int             `json:"version"`
	Checksum string          `json:"checksum"`
	Payload  json.RawMessage `json:"payload"`
}

func encode(st *state) ([]byte, error) {
	payload, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("encode store: %w", err)
	}
	sum := sha256.Sum256(payload)
	var buf bytes.Buffer
	fmt.Fprintf(&buf, `{"version":%d,"checksum":"%s%s","payload":`, formatVersion, checksumPrefix, hex.EncodeToString(sum[:]))
	buf.Write(payload)
	buf.WriteString("}\n")
	return buf.Bytes(), nil
}

// decode parses a store file. Every failure other than a newer version is
// ErrCorrupt: a half-written or damaged file must never look empty.
func decode(path string, data []byte) (*state, error) {
	corrupt := func(format string, args ...any) error {
		return fmt.Errorf("read ipam store %s: %w: %s; %s", path, ErrCorrupt, fmt.Sprintf(format, args...),
			strings.ReplaceAll(corruptHint, "FILE", path))
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, corrupt("file is empty (%d bytes)", len(data))
	}
	var env envelope
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, corrupt("parse: %v", err)
	}
	if env.Version > formatVersion {
		return nil, fmt.Errorf("read ipam store %s: %w: version %d, this sdncni reads up to %d",
			path, ErrUnsupportedVersion, env.Version, formatVersion)
	}
	if env.Version != formatVersion {
		return nil, corrupt("bad format version %d", env.Version)
	}
	if len(env.Payload) == 0 {
		return nil, corrupt("no payload")
	}
	want, ok := strings.CutPrefix(env.Checksum, checksumPrefix)
	if !ok {
		return nil, corrupt("checksum %q is not %s<hex>", env.Checksum, checksumPrefix)
	}
	sum := sha256.Sum256(env.Payload)
	if got := hex.EncodeToString(sum[:]); got != want {
		return nil, corrupt("checksum mismatch: file says %s, payload hashes to %s", want, got)
	}
	st := &state{}
	if err := json.Unmarshal(env.Payload, st); err != nil {
		return nil, corrupt("parse payload: %v", err)
	}
	if err := st.check(); err != nil {
		return nil, corrupt("%v", err)
	}
	return st, nil
}

// readState returns the store at path; a missing file is an empty store.
func readState(path string) (*state, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return newState(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read ipam store %s: %w", path, err)
	}
	return decode(path, data)
}

// writeFileAtomic replaces path with data so that a crash at any point leaves
// either the old or the new file, complete: temp file in the same directory,
// fsync, rename, fsync the directory.
func writeFileAtomic(path string, data []byte) (err error) {
	dir, base := filepath.Split(path)
	f, err := os.CreateTemp(dir, base+tmpInfix+"*")
	if err != nil {
		return fmt.Errorf("write ipam store %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("write ipam store %s: %w", tmp, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("sync ipam store %s: %w", tmp, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("close ipam store %s: %w", tmp, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replace ipam store %s: %w", path, err)
	}
	// The rename is done; from here on only durability is at stake, and tmp
	// no longer exists, so the deferred cleanup must not run.
	if derr := syncDir(dir); derr != nil {
		return fmt.Errorf("sync ipam store directory: %w", derr)
	}
	return nil
}

const tmpInfix = ".tmp-"

func syncDir(dir string) error {
	if dir == "" {
		dir = "."
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// removeStaleTemps deletes temp files left by a writer that crashed before
// its rename. Call only while holding the exclusive lock.
func removeStaleTemps(path string) error {
	matches, err := filepath.Glob(globEscape(path) + tmpInfix + "*")
	if err != nil {
		return fmt.Errorf("find stale temp files of %s: %w", path, err)
	}
	for _, m := range matches {
		if err := os.Remove(m); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove stale temp file: %w", err)
		}
	}
	return nil
}

func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
