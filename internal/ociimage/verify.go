package ociimage

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// ErrMismatch is returned by VerifyArchive when the archive does not hold the image.
var ErrMismatch = errors.New("archive does not match image")

// VerifyArchive reads file back the two ways importers do and checks it holds n: every
// index.json entry carries n's manifest digest and a containerd name of one of n.Refs,
// and the image manifest.json describes for each ref has n's config and layer digests.
// It returns an error wrapping ErrMismatch when they differ.
func VerifyArchive(file string, n Named) error {
	want, err := n.Image.Digest()
	if err != nil {
		return fmt.Errorf("verify %s: %w", file, err)
	}
	idx, err := readIndex(file)
	if err != nil {
		return fmt.Errorf("verify %s: %w", file, err)
	}
	names := map[string]bool{}
	for _, m := range idx.Manifests {
		if m.Digest != want {
			return fmt.Errorf("verify %s: index.json has %s, want %s: %w", file, m.Digest, want, ErrMismatch)
		}
		names[m.Annotations[annotationContainerdName]] = true
	}
	for _, ref := range n.Refs {
		if !names[ref.Name()] {
			return fmt.Errorf("verify %s: index.json does not name %s: %w", file, ref, ErrMismatch)
		}
		got, err := tarball.ImageFromPath(file, &ref)
		if err != nil {
			return fmt.Errorf("verify %s: read %s: %w", file, ref, err)
		}
		if err := sameBlobs(got, n.Image); err != nil {
			return fmt.Errorf("verify %s: %s: %w", file, ref, err)
		}
	}
	return nil
}

func sameBlobs(got, want v1.Image) error {
	gc, err := got.ConfigName()
	if err != nil {
		return err
	}
	wc, err := want.ConfigName()
	if err != nil {
		return err
	}
	if gc != wc {
		return fmt.Errorf("config %s, want %s: %w", gc, wc, ErrMismatch)
	}
	gl, err := got.Layers()
	if err != nil {
		return err
	}
	wl, err := want.Layers()
	if err != nil {
		return err
	}
	if len(gl) != len(wl) {
		return fmt.Errorf("%d layers, want %d: %w", len(gl), len(wl), ErrMismatch)
	}
	for i := range gl {
		g, err := gl[i].Digest()
		if err != nil {
			return err
		}
		w, err := wl[i].Digest()
		if err != nil {
			return err
		}
		if g != w {
			return fmt.Errorf("layer %d is %s, want %s: %w", i, g, w, ErrMismatch)
		}
	}
	return nil
}

// readIndex returns the index.json of an archive.
func readIndex(file string) (*v1.IndexManifest, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("no index.json: %w", ErrMismatch)
		}
		if err != nil {
			return nil, fmt.Errorf("read archive: %w", err)
		}
		if hdr.Name != "index.json" {
			continue
		}
		var idx v1.IndexManifest
		if err := json.NewDecoder(tr).Decode(&idx); err != nil {
			return nil, fmt.Errorf("decode index.json: %w", err)
		}
		return &idx, nil
	}
}
