package main

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// rootfs is a Debian root filesystem made by mmdebstrap.
type rootfs struct {
	suite    string
	packages []string
}

// mmdebstrapOpts are what every rootfs is made with; part of the cache key.
func mmdebstrapOpts() []string {
	return []string{
		"--variant=minbase",
		"--format=tar",
		"--aptopt=Acquire::Languages \"none\"",
		"--dpkgopt=path-exclude=/usr/share/man/*",
		"--dpkgopt=path-exclude=/usr/share/locale/*",
		"--dpkgopt=path-exclude=/usr/share/doc/*",
		"--dpkgopt=path-include=/usr/share/doc/*/copyright",
	}
}

// key is the cache key: suite, package list, options and the apt sources used.
func (r rootfs) key(src aptSources) string {
	pk := slices.Clone(r.packages)
	slices.Sort(pk)
	h := sha256.New()
	fmt.Fprintf(h, "suite=%s\npackages=%s\nopts=%s\n--one-line--\n%s--deb822--\n%s",
		r.suite, strings.Join(pk, ","), strings.Join(mmdebstrapOpts(), " "), src.oneLine, src.deb822)
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// rootfsTarball returns the gzip-compressed tarball of r from the cache, making it with
// mmdebstrap from the machine's apt sources on a miss.
func (b *builder) rootfsTarball(ctx context.Context, r rootfs) (string, error) {
	dir := filepath.Join(b.cache, "images")
	file := filepath.Join(dir, "rootfs-"+r.suite+"-"+r.key(b.sources)+".tar.gz")
	if _, err := os.Stat(file); err == nil {
		return file, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("rootfs cache: %w", err)
	}
	work, err := os.MkdirTemp(dir, ".rootfs-")
	if err != nil {
		return "", fmt.Errorf("rootfs cache: %w", err)
	}
	defer os.RemoveAll(work)

	args := append([]string{"-n", "10", "mmdebstrap"}, mmdebstrapOpts()...)
	args = append(args, "--include="+strings.Join(r.packages, ","), r.suite, "-")
	// A MIRROR that is an existing file is pasted into the chroot's apt sources
	// (mmdebstrap(1)); one file per format since a file holds one format.
	for _, s := range []struct{ name, data string }{{"machine.list", b.sources.oneLine}, {"machine.sources", b.sources.deb822}} {
		if s.data == "" {
			continue
		}
		p := filepath.Join(work, s.name)
		if err := os.WriteFile(p, []byte(s.data), 0o644); err != nil {
			return "", fmt.Errorf("write apt sources: %w", err)
		}
		args = append(args, p)
	}
	tmp := filepath.Join(work, "rootfs.tar.gz")
	if err := b.mmdebstrap(ctx, args, tmp); err != nil {
		return "", fmt.Errorf("mmdebstrap %s %s: %w", r.suite, strings.Join(r.packages, ","), err)
	}
	if err := os.Rename(tmp, file); err != nil {
		return "", fmt.Errorf("rootfs cache: %w", err)
	}
	return file, nil
}

// mmdebstrap runs it with the tarball on stdout, gzipping that into out.
func (b *builder) mmdebstrap(ctx context.Context, args []string, out string) (err error) {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	zw := gzip.NewWriter(f) // no name, no mtime in the header: stable bytes
	cmd := exec.CommandContext(ctx, "nice", args...)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+strconv.FormatInt(b.epoch.Unix(), 10))
	cmd.Stdout = zw
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%w: %s", err, lastLines(stderr.String(), 8))
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("gzip: %w", err)
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
