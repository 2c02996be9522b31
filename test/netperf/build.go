package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

const pluginsModule = "github.com/containernetworking/plugins"

// buildPlugins builds the reference bridge and host-local plugins from source into
// binDir, at the version our go.mod pins. The build runs in that module's own directory
// in the module cache so its go.mod and go.sum pin every dependency exactly as upstream
// released it. It returns the version built.
func buildPlugins(ctx context.Context, repo, binDir string) (string, error) {
	dir, version, err := locateModule(ctx, repo)
	if err == nil && dir == "" {
		dl := exec.CommandContext(ctx, "go", "mod", "download", pluginsModule)
		dl.Dir = repo
		if out, err := dl.CombinedOutput(); err != nil {
			return "", fmt.Errorf("download %s: %w: %s", pluginsModule, err, lastLine(string(out)))
		}
		dir, version, err = locateModule(ctx, repo)
	}
	if err != nil {
		return "", err
	}
	if dir == "" {
		return "", errors.New("module directory of " + pluginsModule + " unknown")
	}
	for _, p := range []string{"plugins/main/bridge", "plugins/ipam/host-local"} {
		b := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(binDir, filepath.Base(p)), "./"+p)
		b.Dir = dir
		b.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly", "CGO_ENABLED=0")
		if out, err := b.CombinedOutput(); err != nil {
			return "", fmt.Errorf("build %s %s: %w: %s", p, version, err, strings.TrimSpace(string(out)))
		}
	}
	return version, nil
}

// locateModule returns the module-cache directory and version of the plugins module
// selected by repo's go.mod; dir is empty when it is not downloaded yet.
func locateModule(ctx context.Context, repo string) (dir, version string, err error) {
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Version}} {{.Dir}}", pluginsModule)
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "GOWORK=off")
	out, err := cmd.Output()
	if err != nil {
		return "", "", fmt.Errorf("locate %s: %w", pluginsModule, err)
	}
	version, dir, _ = strings.Cut(strings.TrimSpace(string(out)), " ")
	return dir, version, nil
}
