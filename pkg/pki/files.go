package pki

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// dataLink is the symlink in a directory written by writeAtomic that names the current
// generation; each file is a symlink through it (as the kubelet writes Secret volumes).
const dataLink = "..data"

// writeAtomic replaces the files of dir all at once: readers (ovn-controller's stream-ssl,
// which re-reads changed files, and our TLS config, which reads at each handshake) see
// the old pair or the new one, never a key of one with the certificate of the other.
// Files are 0600.
func writeAtomic(dir string, files map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("mkdir %s: %w", dir, err)
	}
	gen, err := os.MkdirTemp(dir, "..gen-")
	if err != nil {
		return fmt.Errorf("new generation in %s: %w", dir, err)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(gen, name), b, 0o600); err != nil {
			_ = os.RemoveAll(gen)
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	tmp := filepath.Join(dir, dataLink+".tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(filepath.Base(gen), tmp); err != nil {
		_ = os.RemoveAll(gen)
		return fmt.Errorf("link %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, dataLink)); err != nil {
		_ = os.RemoveAll(gen)
		return fmt.Errorf("switch %s: %w", dir, err)
	}
	for name := range files {
		p := filepath.Join(dir, name)
		if target, err := os.Readlink(p); err == nil && target == filepath.Join(dataLink, name) {
			continue
		}
		_ = os.Remove(p)
		if err := os.Symlink(filepath.Join(dataLink, name), p); err != nil {
			return fmt.Errorf("link %s: %w", p, err)
		}
	}
	// Older generations.
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil //nolint:nilerr // the new pair is in place; leftovers are harmless
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "..gen-") && e.Name() != filepath.Base(gen) {
			_ = os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
	return nil
}

func pemCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}
