package cniserver

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// DefaultNetnsPrefixes are the directories where the runtimes Kubernetes uses put pod
// network namespaces: containerd /var/run/netns/cni-<uuid>, CRI-O /var/run/netns/<uuid>
// (its namespaces_dir), iproute2 and podman /run/netns/<name>. On most nodes /var/run is
// a symlink to /run.
var DefaultNetnsPrefixes = []string{"/run/netns/", "/var/run/netns/"}

// nsGetNSType is NS_GET_NSTYPE (linux/nsfs.h: _IO(0xb7, 0x3)), missing from x/sys/unix.
const nsGetNSType = 0xb703

// hostNetnsRefs name the node's network namespace (pid 1's) and the controller's own
// (the same on a node; different in tests that run the controller in a namespace of its
// own): the namespace a request names must be neither.
var hostNetnsRefs = []string{"/proc/1/ns/net", "/proc/self/ns/net"}

// netnsPolicy decides which CNI_NETNS paths the server accepts. ADD and CHECK enter the
// namespace and move or inspect interfaces there; a request naming the node's own
// namespace would have the controller configure (or, with a crafted ifname, steal) the
// node's interfaces. The socket is root-only, so this is defence in depth against a
// confused or compromised runtime component, not a tenant boundary.
type netnsPolicy struct {
	prefixes []string
}

func newNetnsPolicy(prefixes []string) netnsPolicy {
	var p netnsPolicy
	for _, d := range prefixes {
		if d = strings.TrimSpace(d); d != "" {
			p.prefixes = append(p.prefixes, strings.TrimSuffix(filepath.Clean(d), "/")+"/")
		}
	}
	return p
}

// check returns nil when path is a network namespace the server may enter: a clean
// absolute path under one of the prefixes or /proc/<pid>/ns/net (pid ≠ 1), that is a
// network namespace and not the host's or the controller's own, whatever path leads to it.
func (p netnsPolicy) check(path string) error {
	if !filepath.IsAbs(path) || filepath.Clean(path) != path {
		return fmt.Errorf("%q is not a clean absolute path", path)
	}
	if !p.allowedPath(path) {
		return fmt.Errorf("%q is neither under %s nor /proc/<pid>/ns/net", path, strings.Join(p.prefixes, ", "))
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	typ, err := unix.IoctlRetInt(int(f.Fd()), nsGetNSType)
	if err != nil {
		return fmt.Errorf("%s is not a namespace: %w", path, err)
	}
	if typ != unix.CLONE_NEWNET {
		return fmt.Errorf("%s is not a network namespace", path)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	for i, ref := range hostNetnsRefs {
		var host unix.Stat_t
		if err := unix.Stat(ref, &host); err != nil {
			if i == 0 && (errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM)) {
				// pid 1 may be hidden from us (a hardened init, a sandbox); the controller
				// runs in the node's namespace, so the next reference still holds.
				continue
			}
			// Fail closed: without the reference we cannot tell.
			return fmt.Errorf("identify the node's network namespace (%s): %w", ref, err)
		}
		if st.Dev == host.Dev && st.Ino == host.Ino {
			return fmt.Errorf("%s is the node's network namespace (same as %s)", path, ref)
		}
	}
	return nil
}

func (p netnsPolicy) allowedPath(path string) bool {
	for _, d := range p.prefixes {
		if strings.HasPrefix(path, d) && len(path) > len(d) {
			return true
		}
	}
	rest, ok := strings.CutPrefix(path, "/proc/")
	if !ok {
		return false
	}
	pid, ok := strings.CutSuffix(rest, "/ns/net")
	if !ok {
		return false
	}
	n, err := strconv.ParseUint(pid, 10, 32)
	return err == nil && n > 1 && strconv.FormatUint(n, 10) == pid
}
