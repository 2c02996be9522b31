package ociimage

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Annotations on index.json entries: containerd names an imported image by the first
// (a full reference); the OCI one carries only the tag, as the image-spec asks.
const (
	annotationContainerdName = "io.containerd.image.name"
	annotationRefName        = "org.opencontainers.image.ref.name"
)

// Named is an image and the references it is to be known by.
type Named struct {
	Image v1.Image
	Refs  []name.Tag
}

// WriteArchive writes images to file as an OCI image layout (oci-layout, index.json,
// blobs/) that also carries a Docker-style manifest.json pointing at the same blobs,
// the shape `docker save` has produced since Docker 25. containerd imports the OCI
// index, so the manifest digests it records are the ones Digest reports here;
// tarball.ImageFromPath and `docker load` read manifest.json. The archive is packed
// with WriteTree at mtime and replaces file atomically.
func WriteArchive(file string, images []Named, mtime time.Time) error {
	dir, err := os.MkdirTemp(filepath.Dir(file), ".layout-")
	if err != nil {
		return fmt.Errorf("write archive %s: %w", file, err)
	}
	defer os.RemoveAll(dir)
	if err := writeLayout(dir, images); err != nil {
		return fmt.Errorf("write archive %s: %w", file, err)
	}
	tmp := dir + ".tar"
	defer os.Remove(tmp)
	if err := packTree(tmp, dir, mtime); err != nil {
		return fmt.Errorf("write archive %s: %w", file, err)
	}
	if err := os.Rename(tmp, file); err != nil {
		return fmt.Errorf("write archive %s: %w", file, err)
	}
	return nil
}

func writeLayout(dir string, images []Named) error {
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("create layout: %w", err)
	}
	var mf tarball.Manifest
	for _, n := range images {
		d, err := dockerDescriptor(n)
		if err != nil {
			return err
		}
		mf = append(mf, d)
		for _, ref := range n.Refs {
			err := p.AppendImage(n.Image, layout.WithAnnotations(map[string]string{
				annotationContainerdName: ref.Name(),
				annotationRefName:        ref.TagStr(),
			}))
			if err != nil {
				return fmt.Errorf("add %s to layout: %w", ref, err)
			}
		}
	}
	data, err := json.Marshal(mf)
	if err != nil {
		return fmt.Errorf("encode manifest.json: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), data, 0o644); err != nil {
		return fmt.Errorf("write manifest.json: %w", err)
	}
	return nil
}

// dockerDescriptor is n's entry in manifest.json, naming blobs by their layout paths.
func dockerDescriptor(n Named) (tarball.Descriptor, error) {
	blob := func(h v1.Hash) string { return path.Join("blobs", h.Algorithm, h.Hex) }
	cfg, err := n.Image.ConfigName()
	if err != nil {
		return tarball.Descriptor{}, fmt.Errorf("config digest: %w", err)
	}
	d := tarball.Descriptor{Config: blob(cfg)}
	for _, ref := range n.Refs {
		d.RepoTags = append(d.RepoTags, ref.Name())
	}
	layers, err := n.Image.Layers()
	if err != nil {
		return tarball.Descriptor{}, fmt.Errorf("layers: %w", err)
	}
	for _, l := range layers {
		h, err := l.Digest()
		if err != nil {
			return tarball.Descriptor{}, fmt.Errorf("layer digest: %w", err)
		}
		d.Layers = append(d.Layers, blob(h))
	}
	return d, nil
}

func packTree(file, root string, mtime time.Time) (err error) {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	return WriteTree(f, root, mtime)
}
