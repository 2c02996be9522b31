package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// sdncniEnv is the OVS/OVN environment (hack/dev-env.sh) on the two-node topology —
// one OVN central, and in each node namespace an ovs-vswitchd, an ovn-controller and
// Geneve over the underlay — and the sdncni controller of each node, shared by the
// sdncni cases. Both controllers run with the same --fast-path; switching between the
// fast-path and OVS-only cases restarts them with the other value.
type sdncniEnv struct {
	h        *harness
	started  bool
	startErr error
	// tunnelErr says why the nodes have no Geneve tunnel to each other, nil when they do.
	tunnelErr error
	// kernelCross: controllers with the fast path on also get the kernel cross-node
	// path (--cross-node-vxlan over the kernel underlay link).
	kernelCross bool
	nodes       [2]*sdncniNode
}

// sdncniNode is one node of the environment and its controller.
type sdncniNode struct {
	e     *sdncniEnv
	idx   int
	netns string
	vars  map[string]string

	ctrl     *exec.Cmd
	ctrlFast bool
	ctrlDone chan struct{}
}

// Pod addresses: one network, each node allocating from its half.
const (
	sdncniCIDR = "10.99.0.0/16"
)

var sdncniAllocRanges = [2]string{"10.99.0.0/17", "10.99.128.0/17"}

// crossNodeVXLANDev is the collect-metadata VXLAN device of sdncni's kernel cross-node
// path on each node (its controller creates it).
const crossNodeVXLANDev = namePrefix + "-kvx"

// sdncniNetworkID is the VPN id of the controllers' default network (--network-id).
const sdncniNetworkID = 1

func newSdncniEnv(h *harness) *sdncniEnv {
	e := &sdncniEnv{h: h}
	for i, n := range nodeNetNSes {
		e.nodes[i] = &sdncniNode{e: e, idx: i, netns: n}
	}
	return e
}

func (e *sdncniEnv) dir() string        { return filepath.Join(e.h.work, "ovn") }
func (e *sdncniEnv) script() string     { return filepath.Join(e.h.repo, "hack", "dev-env.sh") }
func (e *sdncniEnv) controller() string { return filepath.Join(e.h.repo, "bin", "sdncni-controller") }

func (n *sdncniNode) name() string      { return fmt.Sprintf("node%d", n.idx+1) }
func (n *sdncniNode) socket() string    { return filepath.Join(n.e.h.work, "cni-"+n.name()+".sock") }
func (n *sdncniNode) bpfPinDir() string { return "/sys/fs/bpf/" + n.netns }

func notAvailable(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrNotAvailable, fmt.Sprintf(format, args...))
}

// up starts the environment once; later calls return the first outcome.
func (e *sdncniEnv) up(ctx context.Context) error {
	if e.started {
		return e.startErr
	}
	e.started = true
	e.startErr = e.start(ctx)
	return e.startErr
}

func (e *sdncniEnv) start(ctx context.Context) error {
	for _, f := range []string{filepath.Join(e.h.repo, "bin", "sdncni"), e.controller()} {
		if _, err := os.Stat(f); err != nil {
			return notAvailable("%s not built (run make build)", f)
		}
	}
	if _, err := os.Stat(e.script()); err != nil {
		return notAvailable("%s missing", e.script())
	}
	if err := copyFile(filepath.Join(e.h.repo, "bin", "sdncni"), filepath.Join(e.h.cniBin, "sdncni")); err != nil {
		return err
	}
	upCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	e.h.cleanup.push("dev-env down", e.down)
	for i, n := range e.nodes {
		cmd := "node-up"
		if i == 0 {
			cmd = "up" // the central too
		}
		out, err := exec.CommandContext(upCtx, e.script(), cmd, "--dir", e.dir(), "--netns", n.netns,
			"--encap-ip", encapCIDRs[i], "--underlay", underlayNetNS).CombinedOutput()
		if err != nil {
			return notAvailable("hack/dev-env.sh %s %s: %v: %s", cmd, n.netns, err, lastLine(string(out)))
		}
		vars, err := readEnvFile(filepath.Join(e.dir(), "node-"+n.netns, "env"))
		if err != nil {
			return notAvailable("dev-env: %v", err)
		}
		for _, k := range []string{"SDNCNI_OVS_DB", "SDNCNI_NB_DB"} {
			if vars[k] == "" {
				return notAvailable("dev-env env file of %s has no %s", n.netns, k)
			}
		}
		n.vars = vars
	}
	e.tunnelErr = e.waitTunnels(upCtx, 30*time.Second)
	switch e.h.opts.CrossNodeFast {
	case "on":
		e.kernelCross = true
	case "auto":
		e.kernelCross = controllerHasFlag(ctx, e.controller(), "cross-node-vxlan")
	}
	return nil
}

// netnsPath is where the node's OVS and controller run.
func (n *sdncniNode) netnsPath() string {
	if p := n.vars["SDNCNI_NETNS_PATH"]; p != "" {
		return p
	}
	return netnsPath(n.netns)
}

// vswitchdPID is the node's ovs-vswitchd PID, 0 when unknown.
func (n *sdncniNode) vswitchdPID() int {
	if f := n.vars["SDNCNI_VSWITCHD_PIDFILE"]; f != "" {
		return findPID(filepath.Dir(f), filepath.Base(f))
	}
	return 0
}

// mgmtSocket is the bridge's OpenFlow management socket in ovs-vswitchd's run
// directory (the node directory of the dev-env), "" when it is not there.
func (n *sdncniNode) mgmtSocket() string {
	dir := n.vars["SDNCNI_NODE_DIR"]
	if dir == "" {
		return ""
	}
	p := filepath.Join(dir, n.bridge()+".mgmt")
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

func (n *sdncniNode) bridge() string {
	if b := n.vars["SDNCNI_BRIDGE"]; b != "" {
		return b
	}
	return "br-int"
}

// ovs is a verifier over the node's integration bridge.
func (n *sdncniNode) ovs() *ovsVerifier {
	return &ovsVerifier{db: n.vars["SDNCNI_OVS_DB"], bridge: n.bridge(), mgmt: n.mgmtSocket()}
}

// down stops the controllers and the environment; idempotent.
func (e *sdncniEnv) down(ctx context.Context) error {
	var errs []error
	for _, n := range e.nodes {
		errs = append(errs, n.stopController(ctx))
		_ = os.RemoveAll(n.bpfPinDir())
	}
	if _, err := os.Stat(e.dir()); err == nil {
		out, err := exec.CommandContext(ctx, e.script(), "down", "--dir", e.dir()).CombinedOutput()
		if err != nil {
			errs = append(errs, fmt.Errorf("dev-env down: %w: %s", err, lastLine(string(out))))
		}
	}
	return errors.Join(errs...)
}

// readEnvFile reads KEY=VALUE lines (optionally prefixed by export, values optionally
// quoted).
func readEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read env file: %w", err)
	}
	defer f.Close()
	vars := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		vars[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"'`)
	}
	return vars, sc.Err()
}

func readTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	if err != nil {
		return fmt.Errorf("copy to %s: %w", dst, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy to %s: %w", dst, err)
	}
	return out.Close()
}
