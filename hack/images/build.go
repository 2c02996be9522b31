package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/sdncni/sdncni/internal/ociimage"
)

type result struct {
	file   string
	digest v1.Hash
	size   int64 // manifest, config and compressed layers
}

// build assembles s and writes its archive to file.
func (b *builder) build(ctx context.Context, s imageSpec, file string) (result, error) {
	var layers []ociimage.Layer
	if s.rootfs != nil {
		tgz, err := b.rootfsTarball(ctx, *s.rootfs)
		if err != nil {
			return result{}, err
		}
		l, err := ociimage.FileLayer(tgz)
		if err != nil {
			return result{}, err
		}
		layers = append(layers, ociimage.Layer{Layer: l, CreatedBy: fmt.Sprintf("mmdebstrap --variant=minbase %s (%v)", s.rootfs.suite, s.rootfs.packages)})
	}
	if s.fill != nil {
		dir, err := os.MkdirTemp("", "sdncni-image-")
		if err != nil {
			return result{}, err
		}
		defer os.RemoveAll(dir)
		if err := s.fill(ctx, dir); err != nil {
			return result{}, err
		}
		l, err := ociimage.DirLayer(dir, b.epoch)
		if err != nil {
			return result{}, err
		}
		layers = append(layers, ociimage.Layer{Layer: l, CreatedBy: s.createdBy})
	}
	cfg := s.config
	cfg.Created = b.epoch
	img, err := ociimage.Build(layers, cfg)
	if err != nil {
		return result{}, err
	}
	var refs []name.Tag
	for _, r := range s.refs {
		t, err := name.NewTag(r, name.StrictValidation)
		if err != nil {
			return result{}, fmt.Errorf("reference %s: %w", r, err)
		}
		refs = append(refs, t)
	}
	named := ociimage.Named{Image: img, Refs: refs}
	if err := ociimage.WriteArchive(file, []ociimage.Named{named}, b.epoch); err != nil {
		return result{}, err
	}
	if err := ociimage.VerifyArchive(file, named); err != nil {
		return result{}, err
	}
	return summarize(file, img)
}

func summarize(file string, img v1.Image) (result, error) {
	res := result{file: filepath.Clean(file)}
	var err error
	if res.digest, err = img.Digest(); err != nil {
		return res, fmt.Errorf("digest: %w", err)
	}
	m, err := img.Manifest()
	if err != nil {
		return res, fmt.Errorf("manifest: %w", err)
	}
	raw, err := img.RawManifest()
	if err != nil {
		return res, fmt.Errorf("manifest: %w", err)
	}
	res.size = int64(len(raw)) + m.Config.Size
	for _, l := range m.Layers {
		res.size += l.Size
	}
	return res, nil
}
