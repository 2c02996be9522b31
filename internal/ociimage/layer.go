package ociimage

import (
	"bytes"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// DirLayer returns a layer holding the tree under root as WriteTree lays it out, so a
// file at root/usr/bin/x lands at /usr/bin/x. The tar is held in memory: meant for
// trees of binaries, not whole root filesystems (use FileLayer for those).
func DirLayer(root string, mtime time.Time) (v1.Layer, error) {
	var buf bytes.Buffer
	if err := WriteTree(&buf, root, mtime); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
	if err != nil {
		return nil, fmt.Errorf("layer from %s: %w", root, err)
	}
	return l, nil
}

// FileLayer returns a layer read from a tar file on disk, gzip-compressed or not. A
// compressed file is used as the layer blob unchanged, which keeps its digest stable
// and saves recompressing it on every build.
func FileLayer(path string) (v1.Layer, error) {
	l, err := tarball.LayerFromFile(path, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("layer from %s: %w", path, err)
	}
	return l, nil
}
