package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// The sdncni controller of each node: started inside the node's namespace with the
// fast path on or off, restarted when a case needs the other setting, stopped by PID.

// ensureController makes sure both nodes' controllers run with the given fast-path
// setting, restarting them when the other setting is running.
func (e *sdncniEnv) ensureController(ctx context.Context, fast bool) error {
	if err := e.up(ctx); err != nil {
		return err
	}
	for _, n := range e.nodes {
		if err := n.ensureController(ctx, fast); err != nil {
			return fmt.Errorf("%s: %w", n.netns, err)
		}
	}
	return nil
}

func (n *sdncniNode) ensureController(ctx context.Context, fast bool) error {
	if n.ctrl != nil && n.ctrlFast == fast {
		select {
		case <-n.ctrlDone:
			return fmt.Errorf("controller exited; see %s", n.logPath(fast))
		default:
			return nil
		}
	}
	if err := n.stopController(ctx); err != nil {
		return err
	}
	_ = os.Remove(n.socket())
	logf, err := os.OpenFile(n.logPath(fast), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("create controller log: %w", err)
	}
	defer logf.Close()
	e := n.e
	// --mtu 0 and the default --tunnel-tx-offload=auto: the pod MTU and the OVS ports'
	// tx offload come from the topology, as on a node of a multi-node cluster.
	args := []string{"--net=" + n.netnsPath(), "--", e.controller(),
		"--socket", n.socket(),
		"--ovs-db", n.vars["SDNCNI_OVS_DB"],
		"--nb-db", n.vars["SDNCNI_NB_DB"],
		"--bridge", n.bridge(),
		"--network", "default",
		"--network-id", fmt.Sprint(sdncniNetworkID),
		"--cidr", sdncniCIDR,
		"--alloc-range", sdncniAllocRanges[n.idx],
		"--mtu", "0",
		"--node-name", n.netns,
		"--ipam-store", filepath.Join(e.h.work, "ipam-"+n.name()+".json"),
		"--bpf-pin-dir", n.bpfPinDir(),
		fmt.Sprintf("--fast-path=%t", fast),
		"--metrics-addr", "127.0.0.1:0",
	}
	if fast && e.kernelCross {
		args = append(args, n.crossNodeArgs()...)
	}
	args = append(args, e.h.opts.ControllerArgs...)
	cmd := exec.Command("nsenter", args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return notAvailable("start controller: %v", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	n.ctrl, n.ctrlFast, n.ctrlDone = cmd, fast, done
	deadline := time.Now().Add(30 * time.Second)
	for {
		if fi, err := os.Stat(n.socket()); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return nil
		}
		select {
		case <-done:
			n.ctrl = nil
			return notAvailable("controller exited (%s) before its socket appeared — not built yet? log: %s",
				cmd.ProcessState, lastLine(readTail(n.logPath(fast))))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return notAvailable("controller socket %s did not appear within 30s", n.socket())
		}
	}
}

func (n *sdncniNode) logPath(fast bool) string {
	return filepath.Join(n.e.h.out, fmt.Sprintf("controller-%s-fast-%t.log", n.name(), fast))
}

// stopController ends the controller we started, by PID: SIGTERM, then SIGKILL.
func (n *sdncniNode) stopController(ctx context.Context) error {
	if n.ctrl == nil {
		return nil
	}
	cmd, done := n.ctrl, n.ctrlDone
	n.ctrl = nil
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	return nil
}

// controllerHasFlag tells whether the controller binary lists flag in its usage.
func controllerHasFlag(ctx context.Context, bin, flag string) bool {
	out, _ := exec.CommandContext(ctx, bin, "-h").CombinedOutput() // -h exits non-zero
	return strings.Contains(string(out), "-"+flag+" ")
}

// crossNodeArgs are the kernel cross-node path's controller flags for node n: the
// device, its address on the kernel underlay link and the other node's block.
func (n *sdncniNode) crossNodeArgs() []string {
	j := 1 - n.idx
	return []string{
		"--cross-node-vxlan", crossNodeVXLANDev,
		"--cross-node-underlay-ip", kernelULIP(n.idx).String(),
		"--cross-node-peers", fmt.Sprintf("%d:%s=%s", sdncniNetworkID, sdncniAllocRanges[j], kernelULIP(j)),
	}
}

// waitTunnels waits until each node's OVS has its Geneve port to the other node.
func (e *sdncniEnv) waitTunnels(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for _, n := range e.nodes {
		for {
			out, err := n.ovs().vsctl(ctx, "--bare", "--columns=name", "find", "Interface", "type=geneve")
			if err == nil && len(strings.Fields(out)) == 1 {
				break
			}
			if time.Now().After(deadline) {
				return notAvailable("%s has no Geneve tunnel to the other node after %s (%v)", n.netns, limit, err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}
