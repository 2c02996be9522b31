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

// namePrefix marks every network namespace, link and pin this harness creates.
const namePrefix = "sdncni-np"

const netnsDir = "/run/netns"

// nodeNetNS is the namespace standing in for the node: host-side interfaces, bridges,
// OVS and the controller live there, never in the root namespace.
const nodeNetNS = namePrefix + "-node"

func netnsPath(name string) string { return filepath.Join(netnsDir, name) }

func netnsExists(name string) bool {
	_, err := os.Stat(netnsPath(name))
	return err == nil
}

// addNetNS creates a named network namespace and returns its path.
func addNetNS(ctx context.Context, name string) (string, error) {
	if out, err := exec.CommandContext(ctx, "ip", "netns", "add", name).CombinedOutput(); err != nil {
		return "", fmt.Errorf("add netns %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return netnsPath(name), nil
}

// delNetNS deletes a named network namespace; a missing one is not an error.
func delNetNS(ctx context.Context, name string) error {
	if !netnsExists(name) {
		return nil
	}
	if out, err := exec.CommandContext(ctx, "ip", "netns", "del", name).CombinedOutput(); err != nil {
		return fmt.Errorf("delete netns %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// ourNetNS lists the namespaces carrying our prefix.
func ourNetNS() ([]string, error) {
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list netns: %w", err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), namePrefix) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// inNetNS returns a command that runs name inside the namespace at nsPath. nsenter
// execs the program, so the command's PID is the program's.
func inNetNS(ctx context.Context, nsPath, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + nsPath, "--", name}, args...)...)
}
