package ociimage

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/stretchr/testify/require"
)

var epoch = time.Unix(1700000000, 0)

// makeTree writes a small tree with a file, an executable, a symlink and nested dirs,
// all stamped with mtime.
func makeTree(t *testing.T, mtime time.Time) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]os.FileMode{"etc/hello": 0o644, "usr/local/bin/tool": 0o755}
	for p, mode := range files {
		full := filepath.Join(root, p)
		require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
		require.NoError(t, os.WriteFile(full, []byte("content of "+p), mode))
		require.NoError(t, os.Chmod(full, mode))
	}
	require.NoError(t, os.Symlink("tool", filepath.Join(root, "usr/local/bin/alias")))
	require.NoError(t, filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		require.NoError(t, err)
		if info.Mode()&os.ModeSymlink == 0 {
			require.NoError(t, os.Chtimes(p, mtime, mtime))
		}
		return nil
	}))
	return root
}

func layerDigest(t *testing.T, root string) v1.Hash {
	t.Helper()
	l, err := DirLayer(root, epoch)
	require.NoError(t, err)
	d, err := l.Digest()
	require.NoError(t, err)
	return d
}

func TestDirLayerDeterministic(t *testing.T) {
	root := makeTree(t, time.Now())
	require.Equal(t, layerDigest(t, root), layerDigest(t, root), "same tree twice")
}

func TestDirLayerIgnoresDiskMtime(t *testing.T) {
	a := makeTree(t, time.Unix(1000, 0))
	b := makeTree(t, time.Unix(2000000000, 0))
	require.Equal(t, layerDigest(t, a), layerDigest(t, b))
}

func TestDirLayerSeesContentAndMode(t *testing.T) {
	base := layerDigest(t, makeTree(t, epoch))

	changed := makeTree(t, epoch)
	require.NoError(t, os.WriteFile(filepath.Join(changed, "etc/hello"), []byte("other"), 0o644))
	require.NotEqual(t, base, layerDigest(t, changed), "content change")

	chmod := makeTree(t, epoch)
	require.NoError(t, os.Chmod(filepath.Join(chmod, "etc/hello"), 0o600))
	require.NotEqual(t, base, layerDigest(t, chmod), "mode change")
}

func testImage(t *testing.T) v1.Image {
	t.Helper()
	l, err := DirLayer(makeTree(t, epoch), epoch)
	require.NoError(t, err)
	img, err := Build([]Layer{{Layer: l, CreatedBy: "test tree"}}, Config{
		Created:    epoch,
		Env:        []string{"PATH=/usr/local/bin:/usr/bin:/bin"},
		Entrypoint: []string{"/usr/local/bin/tool"},
	})
	require.NoError(t, err)
	return img
}

func TestBuildConfig(t *testing.T) {
	img := testImage(t)
	cf, err := img.ConfigFile()
	require.NoError(t, err)
	require.Equal(t, "linux", cf.OS)
	require.Equal(t, "amd64", cf.Architecture)
	require.Equal(t, []string{"/usr/local/bin/tool"}, cf.Config.Entrypoint)
	require.Len(t, cf.RootFS.DiffIDs, 1)
	require.Len(t, cf.History, 1)
	require.True(t, cf.Created.Equal(epoch))
}

func TestArchiveRoundTrip(t *testing.T) {
	img := testImage(t)
	want, err := img.Digest()
	require.NoError(t, err)
	tag, err := name.NewTag("sdncni.local/test:v1")
	require.NoError(t, err)
	tag2, err := name.NewTag("sdncni.local/test:latest")
	require.NoError(t, err)

	file := filepath.Join(t.TempDir(), "img.tar")
	require.NoError(t, WriteArchive(file, []Named{{Image: img, Refs: []name.Tag{tag, tag2}}}, epoch))

	// Docker-style reader: manifest.json.
	got, err := tarball.ImageFromPath(file, &tag)
	require.NoError(t, err)
	gotCfg, err := got.ConfigName()
	require.NoError(t, err)
	wantCfg, err := img.ConfigName()
	require.NoError(t, err)
	require.Equal(t, wantCfg, gotCfg)
	layers, err := got.Layers()
	require.NoError(t, err)
	require.Len(t, layers, 1)
	rc, err := layers[0].Uncompressed()
	require.NoError(t, err)
	require.NoError(t, rc.Close())

	// OCI reader: index.json, what containerd imports; the manifest digest survives.
	dir := t.TempDir()
	untar(t, file, dir)
	idx, err := layout.ImageIndexFromPath(dir)
	require.NoError(t, err)
	im, err := idx.IndexManifest()
	require.NoError(t, err)
	require.Len(t, im.Manifests, 2)
	for _, m := range im.Manifests {
		require.Equal(t, want, m.Digest)
	}
	require.Equal(t, "sdncni.local/test:v1", im.Manifests[0].Annotations[annotationContainerdName])
	require.Equal(t, "v1", im.Manifests[0].Annotations[annotationRefName])

	require.NoError(t, VerifyArchive(file, Named{Image: img, Refs: []name.Tag{tag, tag2}}))
	other, err := name.NewTag("sdncni.local/test:other")
	require.NoError(t, err)
	require.ErrorIs(t, VerifyArchive(file, Named{Image: img, Refs: []name.Tag{other}}), ErrMismatch)

	// Rewriting gives the same bytes.
	file2 := filepath.Join(t.TempDir(), "img.tar")
	require.NoError(t, WriteArchive(file2, []Named{{Image: img, Refs: []name.Tag{tag, tag2}}}, epoch))
	a, err := os.ReadFile(file)
	require.NoError(t, err)
	b, err := os.ReadFile(file2)
	require.NoError(t, err)
	require.Equal(t, a, b)
}
