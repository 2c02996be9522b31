package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	// clusterPrefix names a cluster's network namespaces (nodes and underlay).
	clusterPrefix = "sdncni-2n-"
	// underlayNet holds the nodes' encap IPs: node i (from 0) has .(i+1).
	underlayNet = "100.64.0."
	underlayLen = 24
	// kernelUnderlayNet holds the nodes' kernel-owned underlay addresses (the
	// cross-node fast path's VXLAN runs over them): node i has .(i+1).
	kernelUnderlayNet = "100.65.0."
	// tunnelWait bounds how long LaunchCluster waits for ovn-controller's tunnels.
	tunnelWait = 30 * time.Second
)

// Cluster is several simulated nodes sharing one OVN central (NB, SB, northd in the root
// netns), each a network namespace with its own ovs-vswitchd (userspace datapath) and
// ovn-controller, joined by Geneve over an underlay: a Linux bridge in a network
// namespace of its own, veth'd to every node's br-phy, which holds the node's encap IP
// (100.64.0.N/24, N = index+1). Each node also has a kernel-owned link to the same
// underlay bridge, ulk0, holding 100.65.0.N/24, for the kernel's VXLAN: what a real node's
// NIC is. See hack/dev-env.sh --underlay and --kernel-underlay.
type Cluster struct {
	// Dir holds every db, socket, pidfile and log of the cluster.
	Dir string
	// Underlay is the name of the underlay network namespace.
	Underlay string
	// NBDB and SBDB are the shared central's endpoints.
	NBDB, SBDB string
	// Nodes are the nodes in start order; each node's SystemID (its OVN chassis name) is
	// its netns name. Stop the cluster with Cluster.Stop, never a node's Stop (that
	// stops the whole Dir).
	Nodes []*OVN

	script string
}

// StartCluster starts a cluster of n nodes for t and stops it (every daemon by PID, the
// namespaces, the directory) when t ends. It skips (fails under CI) without root or the
// OVS/OVN programs.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	RequireOVN(t)
	c, err := LaunchCluster(n)
	if err != nil {
		t.Fatalf("start OVS/OVN cluster: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("OVS/OVN cluster logs:\n%s", c.Logs())
		}
		if err := c.Stop(); err != nil {
			t.Errorf("stop OVS/OVN cluster: %v", err)
		}
	})
	return c
}

// LaunchCluster starts a cluster of n nodes without a testing.TB; the caller must call
// Stop. It returns once every node's chassis is in SB and every node's br-int has a
// Geneve port to each other node. On failure it has already stopped what it started.
func LaunchCluster(n int) (*Cluster, error) {
	if n < 1 || n > 250 {
		return nil, fmt.Errorf("launch cluster: %d nodes, want 1..250", n)
	}
	script, err := devEnvScript()
	if err != nil {
		return nil, err
	}
	sweepStale(script)
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		return nil, fmt.Errorf("make dir: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, harnessPIDFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("write %s: %w", harnessPIDFile, err)
	}
	id := randomHex(3)
	c := &Cluster{Dir: dir, Underlay: clusterPrefix + id + "-ul", script: script}
	fail := func(err error) (*Cluster, error) {
		logs := c.Logs()
		if stopErr := c.Stop(); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
		return nil, fmt.Errorf("%w\n%s", err, logs)
	}
	for i := range n {
		o := &OVN{Dir: dir, NetNS: fmt.Sprintf("%s%s-%d", clusterPrefix, id, i+1), script: script}
		c.Nodes = append(c.Nodes, o)
		cmd := "node-up"
		if i == 0 {
			cmd = "up" // the central too
		}
		encap := fmt.Sprintf("%s%d/%d", underlayNet, i+1, underlayLen)
		kernel := fmt.Sprintf("%s%d/%d", kernelUnderlayNet, i+1, underlayLen)
		if out, err := o.run(cmd, "--encap-ip", encap, "--underlay", c.Underlay, "--kernel-underlay", kernel); err != nil {
			return fail(fmt.Errorf("dev-env.sh %s %s: %w\n%s", cmd, o.NetNS, err, out))
		}
		if err := o.loadEnvFile(filepath.Join(dir, "node-"+o.NetNS, "env")); err != nil {
			return fail(err)
		}
	}
	c.NBDB, c.SBDB = c.Nodes[0].NBDB, c.Nodes[0].SBDB
	if err := c.waitTunnels(n - 1); err != nil {
		return fail(err)
	}
	return c, nil
}

// EncapIP is node i's Geneve endpoint on the underlay.
func (c *Cluster) EncapIP(i int) string { return fmt.Sprintf("%s%d", underlayNet, i+1) }

// KernelIP is node i's kernel-owned underlay address (ulk0), where its VXLAN device
// sends and receives.
func (c *Cluster) KernelIP(i int) string { return fmt.Sprintf("%s%d", kernelUnderlayNet, i+1) }

// waitTunnels waits until every node's OVS has want Geneve tunnel ports.
func (c *Cluster) waitTunnels(want int) error {
	deadline := time.Now().Add(tunnelWait)
	for _, o := range c.Nodes {
		for {
			out, err := o.vsctlOut("--bare", "--columns=name", "find", "Interface", "type=geneve")
			got := len(strings.Fields(out))
			if err == nil && got == want {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("node %s has %d geneve tunnels after %s, want %d (%v)", o.NetNS, got, tunnelWait, want, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

// Stop runs 'dev-env.sh down' for the whole cluster: every node (bridges, daemons,
// netns, underlay veth), the central and the underlay netns; then removes Dir. Calling
// it twice is harmless.
func (c *Cluster) Stop() error {
	o := &OVN{Dir: c.Dir, NetNS: clusterPrefix + "none", script: c.script}
	return o.Stop()
}

// Logs returns every daemon log of the cluster, each with a header.
func (c *Cluster) Logs() string { return (&OVN{Dir: c.Dir}).Logs() }

// Nbctl runs ovn-nbctl against the shared Northbound database.
func (c *Cluster) Nbctl(t testing.TB, args ...string) string {
	t.Helper()
	return c.Nodes[0].Nbctl(t, args...)
}

// Sbctl runs ovn-sbctl against the shared Southbound database.
func (c *Cluster) Sbctl(t testing.TB, args ...string) string {
	t.Helper()
	return c.Nodes[0].Sbctl(t, args...)
}

// vsctlOut runs ovs-vsctl against the node's database without a testing.TB.
func (o *OVN) vsctlOut(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	full := append([]string{"--db=" + o.OVSDB, "--timeout=5"}, args...)
	out, err := exec.CommandContext(ctx, "ovs-vsctl", full...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}
