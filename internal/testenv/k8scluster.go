package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// k8sClusterTimeout bounds 'hack/k8s-cluster.sh up', which first builds the cluster
// binaries on a machine's first run (hack/k8s-binaries.sh cluster: ≈ 20–25 min cold on
// two busy cores, on top of the default set); with cached binaries 'up' takes ≈ 30 s.
const k8sClusterTimeout = 45 * time.Minute

// K8sCluster is a real Kubernetes cluster on this machine, started by
// hack/k8s-cluster.sh: a control plane (etcd, kube-apiserver, controller-manager,
// scheduler) in a network namespace of its own, and nodes that are each a network,
// mount and UTS namespace running containerd and kubelet. Nodes register but stay
// NotReady until a CNI is installed.
type K8sCluster struct {
	// Dir is the cluster's private state directory (certs, pidfiles, every daemon's log).
	Dir string
	// Kubeconfig is an admin (system:masters) kubeconfig reaching the API server through
	// the relay on the root network namespace's loopback.
	Kubeconfig string
	// Nodes are the node names, in order; node i (from 0) has InternalIP NodeIP(i).
	Nodes []string
	// Prefix names the cluster's network namespaces (Prefix-cp, the node names) and cgroups.
	Prefix string

	script string
	env    []string
}

// StartK8sCluster brings up a cluster of two nodes in a private state directory and
// namespaces of its own, and tears it down (every process, mount, netns, link, cgroup,
// sysctl) when t ends. It skips outside CI, and fails under CI, without root or the
// programs the script needs. The first run on a machine builds the binaries: run such
// tests with a -timeout of at least 50m.
func StartK8sCluster(t testing.TB) *K8sCluster {
	t.Helper()
	if unitOnly() {
		t.Skip("integration tier (Kubernetes cluster): skipped by SDNCNI_TEST_TIER=unit")
	}
	RequireRoot(t)
	RequireCommands(t, "ip", "nsenter", "unshare", "socat", "runc", "openssl", "jq", "go")
	c, err := newK8sCluster(2)
	if err != nil {
		t.Fatalf("prepare Kubernetes cluster: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("Kubernetes cluster logs:\n%s", c.Logs())
		}
		if err := c.Stop(); err != nil {
			t.Errorf("stop Kubernetes cluster: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), k8sClusterTimeout)
	defer cancel()
	out, err := c.run(ctx, "up")
	if err != nil {
		t.Fatalf("hack/k8s-cluster.sh up: %v\n%s", err, tail(out, 8000))
	}
	return c
}

func newK8sCluster(nodes int) (*K8sCluster, error) {
	root, err := ModuleRoot()
	if err != nil {
		return nil, err
	}
	port, err := freeLoopbackPort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "sdncni-k8s-")
	if err != nil {
		return nil, fmt.Errorf("make state dir: %w", err)
	}
	id := make([]byte, 2)
	if _, err := rand.Read(id); err != nil {
		return nil, fmt.Errorf("random prefix: %w", err)
	}
	c := &K8sCluster{
		Dir:        dir,
		Kubeconfig: filepath.Join(dir, "admin.kubeconfig"), // what 'up' prints
		Prefix:     "t" + hex.EncodeToString(id),
		script:     filepath.Join(root, "hack", "k8s-cluster.sh"),
	}
	for i := range nodes {
		c.Nodes = append(c.Nodes, fmt.Sprintf("%s-node%d", c.Prefix, i+1))
	}
	c.env = append(os.Environ(), "SDNK_DIR="+dir, "SDNK_PREFIX="+c.Prefix,
		"SDNK_NODES="+strconv.Itoa(nodes), "SDNK_PORT="+strconv.Itoa(port))
	return c, nil
}

// NodeIP is node i's (from 0) address on the node network, its InternalIP.
func (c *K8sCluster) NodeIP(i int) string { return fmt.Sprintf("100.65.0.%d", i+1) }

// Stop runs 'hack/k8s-cluster.sh down'. Calling it twice is harmless.
func (c *K8sCluster) Stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if out, err := c.run(ctx, "down"); err != nil {
		return fmt.Errorf("hack/k8s-cluster.sh down: %w\n%s", err, tail(out, 4000))
	}
	return nil
}

// Kubectl runs the cluster's kubectl (v1.37, from hack/k8s-binaries.sh) as the admin
// and returns its stdout.
func (c *K8sCluster) Kubectl(ctx context.Context, args ...string) (string, error) {
	bin, err := c.binDir(ctx)
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "kubectl"), append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

// Script runs hack/NAME (e.g. k8s-install.sh) with args against this cluster (its state
// dir and prefix in the environment) and returns its combined output.
func (c *K8sCluster) Script(ctx context.Context, name string, args ...string) (string, error) {
	x := exec.CommandContext(ctx, "bash", append([]string{filepath.Join(filepath.Dir(c.script), name)}, args...)...)
	x.Env = c.env
	x.WaitDelay = 10 * time.Second
	var out bytes.Buffer
	x.Stdout, x.Stderr = &out, &out
	err := x.Run()
	if err != nil {
		return out.String(), fmt.Errorf("hack/%s %s: %w\n%s", name, strings.Join(args, " "), err, tail(out.String(), 6000))
	}
	return out.String(), nil
}

// Exec runs a command inside node (its network, mount and UTS namespaces) and returns
// its stdout.
func (c *K8sCluster) Exec(ctx context.Context, node string, args ...string) (string, error) {
	x := exec.CommandContext(ctx, "bash", append([]string{c.script, "exec", node, "--"}, args...)...)
	x.Env = c.env
	x.WaitDelay = 5 * time.Second
	var stderr bytes.Buffer
	x.Stderr = &stderr
	out, err := x.Output()
	if err != nil {
		return string(out), fmt.Errorf("in %s: %s: %w: %s", node, strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

// NodeFS is the directory holding node's private file system (what the node sees at
// /var/lib/sdncni, /etc/cni/net.d, … is under it).
func (c *K8sCluster) NodeFS(node string) string { return filepath.Join(c.Dir, "nodes", node, "fs") }

// Logs returns the tail of every daemon log under Dir, each with a header.
func (c *K8sCluster) Logs() string {
	var b strings.Builder
	_ = filepath.WalkDir(c.Dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".log") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		fmt.Fprintf(&b, "==> %s <==\n%s\n", path, tail(string(data), 3000))
		return nil
	})
	return b.String()
}

func (c *K8sCluster) binDir(ctx context.Context) (string, error) {
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(filepath.Dir(c.script), "k8s-binaries.sh"), "cluster")
	cmd.Env = c.env
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("hack/k8s-binaries.sh cluster: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1], nil
}

// run runs the script with the cluster's environment; stdout and stderr combined.
func (c *K8sCluster) run(ctx context.Context, cmd string) (string, error) {
	x := exec.CommandContext(ctx, "bash", c.script, cmd)
	x.Env = c.env
	x.WaitDelay = 10 * time.Second
	var out bytes.Buffer
	x.Stdout, x.Stderr = &out, &out
	err := x.Run()
	return out.String(), err
}

// freeLoopbackPort is a TCP port free on 127.0.0.1 now, for the API server relay.
func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
