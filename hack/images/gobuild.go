package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// run runs a command (niced: the machine is shared) in dir and returns its stdout.
func (b *builder) run(ctx context.Context, dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "nice", append([]string{"-n", "10", name}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, lastLines(stderr.String(), 12))
	}
	return stdout.String(), nil
}

// goEnv is what every Go build here runs with: static binaries, no workspace.
func goEnv(extra ...string) []string {
	return append([]string{"CGO_ENABLED=0", "GOWORK=off", "GOOS=linux", "GOARCH=amd64"}, extra...)
}

// ourBinaries builds the controller and the CNI shim into dir, as `make build` does.
func (b *builder) ourBinaries(ctx context.Context, dir string) error {
	ld := "-s -w -X github.com/sdncni/sdncni/internal/version.Version=" + b.version
	for out, pkg := range map[string]string{"sdncni-controller": "./cmd/controller", "sdncni": "./cmd/cni-plugin"} {
		if _, err := b.run(ctx, b.repo, goEnv(), "go", "build", "-trimpath", "-ldflags", ld, "-o", filepath.Join(dir, out), pkg); err != nil {
			return fmt.Errorf("build %s: %w", out, err)
		}
	}
	return nil
}

const pluginsModule = "github.com/containernetworking/plugins"

// referencePlugins builds portmap and bandwidth at the plugins version our go.mod pins,
// in that module's own directory in the module cache so its go.mod and go.sum pin every
// dependency as upstream released it (as test/netperf does for bridge and host-local).
// Outputs are cached by version; it returns their directory.
func (b *builder) referencePlugins(ctx context.Context) (string, string, error) {
	if _, err := b.run(ctx, b.repo, goEnv(), "go", "mod", "download", pluginsModule); err != nil {
		return "", "", fmt.Errorf("download %s: %w", pluginsModule, err)
	}
	out, err := b.run(ctx, b.repo, goEnv(), "go", "list", "-m", "-f", "{{.Version}} {{.Dir}}", pluginsModule)
	if err != nil {
		return "", "", fmt.Errorf("locate %s: %w", pluginsModule, err)
	}
	version, modDir, _ := strings.Cut(strings.TrimSpace(out), " ")
	names := []string{"portmap", "bandwidth"}
	cached := filepath.Join(b.cache, "gobin", "cni-plugins@"+version)
	if allExist(cached, names) {
		return cached, version, nil
	}
	if err := os.MkdirAll(filepath.Dir(cached), 0o755); err != nil {
		return "", "", fmt.Errorf("plugins cache: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(cached), ".build-")
	if err != nil {
		return "", "", fmt.Errorf("plugins cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	ld := "-s -w -X " + pluginsModule + "/pkg/utils/buildversion.BuildVersion=" + version
	env := goEnv("GOFLAGS=-mod=readonly")
	for _, n := range names {
		if _, err := b.run(ctx, modDir, env, "go", "build", "-trimpath", "-ldflags", ld, "-o", filepath.Join(tmp, n), "./plugins/meta/"+n); err != nil {
			return "", "", fmt.Errorf("build %s %s: %w", n, version, err)
		}
	}
	return cached, version, replaceDir(tmp, cached)
}

// wrapperBuild builds pkg of module@version in a throw-away module that requires it, so
// our go.mod never sees third-party builds. replaces are extra "old=new@version"
// directives. The binary is cached under gobin/<bin>@<version>; it returns its path.
func (b *builder) wrapperBuild(ctx context.Context, module, version, pkg, bin, ldflags string, replaces []string) (string, error) {
	cached := filepath.Join(b.cache, "gobin", bin+"@"+version)
	if allExist(cached, []string{bin}) {
		return filepath.Join(cached, bin), nil
	}
	if err := os.MkdirAll(filepath.Dir(cached), 0o755); err != nil {
		return "", fmt.Errorf("go cache: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(cached), ".build-")
	if err != nil {
		return "", fmt.Errorf("go cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	mod := filepath.Join(tmp, "mod")
	if err := os.Mkdir(mod, 0o755); err != nil {
		return "", err
	}
	env := goEnv("GOFLAGS=-mod=mod")
	steps := [][]string{{"mod", "init", "sdncni.local/build/" + bin}}
	edit := []string{"mod", "edit", "-require=" + module + "@" + version}
	for _, r := range replaces {
		edit = append(edit, "-replace="+r)
	}
	steps = append(steps, edit, []string{"get", pkg + "@" + version},
		[]string{"build", "-trimpath", "-ldflags", "-s -w " + ldflags, "-o", filepath.Join(tmp, "out", bin), pkg})
	for _, s := range steps {
		if _, err := b.run(ctx, mod, env, "go", s...); err != nil {
			return "", fmt.Errorf("build %s %s: %w", bin, version, err)
		}
	}
	if err := replaceDir(filepath.Join(tmp, "out"), cached); err != nil {
		return "", err
	}
	return filepath.Join(cached, bin), nil
}

// moduleDir downloads module@version and returns its directory and go.mod path.
func (b *builder) moduleDir(ctx context.Context, module, version string) (dir, gomod string, err error) {
	out, err := b.run(ctx, os.TempDir(), []string{"GOFLAGS=-mod=mod"}, "go", "mod", "download", "-json", module+"@"+version)
	if err != nil {
		return "", "", fmt.Errorf("download %s@%s: %w", module, version, err)
	}
	var m struct{ Dir, GoMod string }
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		return "", "", fmt.Errorf("download %s@%s: %w", module, version, err)
	}
	return m.Dir, m.GoMod, nil
}

// stagingReplaces returns, for k8s.io/kubernetes@version, a replace of every staging
// module it both requires and replaces with ./staging/... by the published copy of the
// same tree (v0.MINOR.PATCH): the wrapper-module trick of hack/k8s-binaries.sh.
func (b *builder) stagingReplaces(ctx context.Context, gomod, version string) ([]string, error) {
	out, err := b.run(ctx, os.TempDir(), nil, "go", "mod", "edit", "-json", gomod)
	if err != nil {
		return nil, err
	}
	var m struct {
		Require []struct{ Path string }
		Replace []struct{ Old, New struct{ Path string } }
	}
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		return nil, fmt.Errorf("parse %s: %w", gomod, err)
	}
	required := map[string]bool{}
	for _, r := range m.Require {
		required[r.Path] = true
	}
	staging := "v0." + strings.TrimPrefix(version, "v1.")
	var reps []string
	for _, r := range m.Replace {
		if strings.HasPrefix(r.New.Path, "./staging/") && required[r.Old.Path] {
			reps = append(reps, r.Old.Path+"="+r.Old.Path+"@"+staging)
		}
	}
	if len(reps) == 0 {
		return nil, fmt.Errorf("no staging modules in %s", gomod)
	}
	return reps, nil
}

func allExist(dir string, names []string) bool {
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			return false
		}
	}
	return true
}

// replaceDir moves src to dst, replacing any stale dst.
func replaceDir(src, dst string) error {
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	if err := os.Rename(src, dst); err != nil {
		return fmt.Errorf("cache %s: %w", dst, err)
	}
	return nil
}
