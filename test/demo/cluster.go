package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sdncni/sdncni/internal/testenv"
)

// The control plane and the nodes: API server, OVN central, two OVS/OVN nodes.

// startAPIServer builds (first run) or finds kube-apiserver, etcd and kubectl, then starts
// etcd and kube-apiserver with the sdncni CRDs installed.
func (d *demo) startAPIServer(ctx context.Context) error {
	section("1a. Kubernetes API server", "a real kube-apiserver + etcd, the sdncni CRDs installed from deploy/crds")
	say("kube-apiserver, etcd, kubectl: hack/k8s-binaries.sh. The FIRST run on a machine builds them")
	say("from source through the Go module proxy: about 10–15 minutes on 2 cores. Cached afterwards (~1 s).")
	t0 := time.Now()
	dir, err := kubeBinaries(ctx, d.root)
	if err != nil {
		return err
	}
	say("binaries: %s (%s)", dir, time.Since(t0).Round(100*time.Millisecond))
	// testenv.KubeBinaries would run the script again (silently); point it at the result.
	if err := os.Setenv("KUBEBUILDER_ASSETS", dir); err != nil {
		return err
	}
	api, err := testenv.LaunchAPIServer(ctx)
	if err != nil {
		return fmt.Errorf("start API server: %w", err)
	}
	d.api = api
	d.state.APIDirs, d.state.APIPIDs = apiProcesses()
	d.saveState()
	d.onCleanup("API server stopped (kube-apiserver, etcd; their data and certs removed)", api.Stop)
	say("API server: %s in the root netns (PIDs %s)", api.Config.Host, pidList(d.state.APIPIDs))
	say("kubeconfig: %s", api.Kubeconfig)
	return nil
}

// kubeBinaries runs hack/k8s-binaries.sh, showing its progress, and returns its directory.
func kubeBinaries(ctx context.Context, root string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 40*time.Minute)
	defer cancel()
	var stdout bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "hack", "k8s-binaries.sh"))
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return "", err
	}
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("run hack/k8s-binaries.sh: %w", err)
	}
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		fmt.Printf("     | %s\n", sc.Text())
	}
	if err := cmd.Wait(); err != nil {
		return "", fmt.Errorf("hack/k8s-binaries.sh: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	return lines[len(lines)-1], nil
}

// apiProcesses finds the etcd and kube-apiserver envtest started (our children) and the
// directories they use, for the leftover check and --down.
func apiProcesses() (dirs []string, pids []int) {
	self := os.Getpid()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || parentOf(pid) != self {
			continue
		}
		comm := commOf(pid)
		if comm != "etcd" && comm != "kube-apiserver" {
			continue
		}
		pids = append(pids, pid)
		raw, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		for _, arg := range strings.Split(string(raw), "\x00") {
			for _, flag := range []string{"--data-dir=", "--cert-dir="} {
				if v, ok := strings.CutPrefix(arg, flag); ok && strings.HasPrefix(v, os.TempDir()) {
					dirs = append(dirs, v)
				}
			}
		}
	}
	sort.Ints(pids)
	return dirs, pids
}

func parentOf(pid int) int {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// pid (comm) state ppid …; comm may hold spaces, so cut at the last ')'.
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// alive reports whether pid is a live process (a zombie is not).
func alive(pid int) bool {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && len(s) > i+2 && s[i+2] != 'Z'
}

func commOf(pid int) string {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(raw))
}

func pidList(pids []int) string {
	var s []string
	for _, p := range pids {
		s = append(s, fmt.Sprintf("%s %d", commOf(p), p))
	}
	return strings.Join(s, ", ")
}

// startCluster starts OVN central and two nodes joined by Geneve.
func (d *demo) startCluster(ctx context.Context) error {
	section("1b. OVN central and two nodes", "each node is a network namespace with its own ovs-vswitchd (userspace datapath) and ovn-controller; the nodes reach each other only over Geneve on an underlay")
	if err := ctx.Err(); err != nil {
		return err
	}
	c, err := testenv.LaunchCluster(2)
	if err != nil {
		return fmt.Errorf("start OVS/OVN cluster: %w", err)
	}
	d.cluster = c
	d.state.ClusterDir = c.Dir
	d.state.NetNS = append(d.state.NetNS, c.Underlay)
	for i, o := range c.Nodes {
		n := &node{name: fmt.Sprintf("node%d", i+1), ovn: o, encap: c.EncapIP(i)}
		n.dir = filepath.Join(d.work, n.name)
		n.socket = filepath.Join(n.dir, "cni.sock")
		n.pinDir = pinPrefix + n.name
		d.nodes = append(d.nodes, n)
		d.state.NetNS = append(d.state.NetNS, o.NetNS)
	}
	d.state.Daemons = daemonPIDs(c.Dir)
	d.saveState()
	d.onCleanup("OVS/OVN stopped (central, both nodes, underlay; their netns and directory removed)", c.Stop)
	say("OVN central (NB, SB, ovn-northd): root netns; NB %s", c.NBDB)
	say("underlay: netns %s (a Linux bridge; node i has 100.64.0.i/24)", c.Underlay)
	for _, n := range d.nodes {
		say("%s: netns %s, chassis %s, Geneve endpoint %s", n.name, n.ovn.NetNS, n.ovn.SystemID, n.encap)
	}
	var rows [][]string
	for _, p := range d.state.Daemons {
		rows = append(rows, []string{p.Name, strconv.Itoa(p.PID), p.Where})
	}
	say("daemons (by pidfile):")
	table([]string{"daemon", "pid", "of"}, rows)
	return nil
}

// daemon is a process started by dev-env.sh.
type daemon struct {
	Name  string
	PID   int
	Where string
}

// daemonPIDs reads every pidfile dev-env.sh wrote under dir.
func daemonPIDs(dir string) []daemon {
	var ds []daemon
	_ = filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() || !strings.HasSuffix(p, ".pid") || filepath.Base(p) == "harness.pid" {
			return nil
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
		if err != nil {
			return nil
		}
		where := strings.TrimPrefix(filepath.Base(filepath.Dir(p)), "node-")
		ds = append(ds, daemon{Name: commOf(pid), PID: pid, Where: where})
		return nil
	})
	sort.Slice(ds, func(i, j int) bool { return ds[i].Where+ds[i].Name < ds[j].Where+ds[j].Name })
	return ds
}

// node is one simulated node and our controller on it.
type node struct {
	name, encap         string
	ovn                 *testenv.OVN
	dir, socket, pinDir string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// startControllers starts sdncni-controller in each node's netns in VPN mode.
func (d *demo) startControllers(ctx context.Context) error {
	section("1c. sdncni-controller on each node (VPN mode)", "the controller runs inside the node, reads VirtualPrivateNetworks from the API server (--kubeconfig) and serves the CNI socket")
	u, err := url.Parse(d.api.Config.Host)
	if err != nil {
		return err
	}
	// The cluster role's leader-election lease lives in sdncni-system.
	out, err := d.api.Kubectl(ctx, nil, "apply", "-f", filepath.Join(d.root, "deploy", "namespace.yaml"))
	if err != nil {
		return err
	}
	say("$ kubectl apply -f deploy/namespace.yaml")
	block(out)
	for _, n := range d.nodes {
		if err := ctx.Err(); err != nil {
			return err
		}
		// The API server listens on the root netns' loopback; the node has its own.
		stop, err := testenv.Forward(n.ovn.NetNSPath, u.Host)
		if err != nil {
			return err
		}
		d.onCleanup("", func() error { stop(); return nil })
		if err := os.MkdirAll(n.dir, 0o755); err != nil {
			return err
		}
		d.onCleanup("", func() error { return os.RemoveAll(n.dir) })
		d.state.Pins = append(d.state.Pins, n.pinDir)
		d.onCleanup("", func() error { return n.teardown(d.bin) })
		d.onCleanup(fmt.Sprintf("controller on %s stopped", n.name), n.stop)
		if err := n.start(d.bin, d.api.Kubeconfig); err != nil {
			return err
		}
		d.state.Controllers = append(d.state.Controllers, n.cmd.Process.Pid)
		d.saveState()
		say("%s: pid %d in netns %s; CNI socket %s; metrics %s (node netns); fast-path pins %s; log %s",
			n.name, n.cmd.Process.Pid, n.ovn.NetNS, n.socket, metricsAddr, n.pinDir, n.logPath())
	}
	say("(the API server's address is relayed into each node netns by this program: testenv.Forward)")
	return nil
}

func (n *node) logPath() string { return filepath.Join(n.dir, "controller.log") }

func (n *node) start(bin, kubeconfig string) error {
	logf, err := os.Create(n.logPath())
	if err != nil {
		return err
	}
	defer logf.Close()
	args := []string{"--net=" + n.ovn.NetNSPath, filepath.Join(bin, "sdncni-controller"),
		"--socket", n.socket, "--ovs-db", n.ovn.OVSDB, "--nb-db", n.ovn.NBDB, "--bridge", n.ovn.Bridge,
		"--cidr", defaultCIDR, "--mtu", "0", "--ipam-store", filepath.Join(n.dir, "ipam.json"),
		"--bpf-pin-dir", n.pinDir, "--metrics-addr", metricsAddr, "--node-name", n.ovn.SystemID,
		"--kubeconfig", kubeconfig, "--node-block-size", "26", "-v", "1"}
	cmd := exec.Command("nsenter", args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = ownGroup() // Ctrl-C reaches us, not the controller; we stop it in order
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start controller on %s: %w", n.name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	n.mu.Lock()
	n.cmd, n.exited = cmd, exited
	n.mu.Unlock()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(n.socket); err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("controller on %s exited before serving:\n%s", n.name, tailFile(n.logPath()))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("controller on %s did not serve within 60s:\n%s", n.name, tailFile(n.logPath()))
		}
	}
}

// stop asks the controller to stop (SIGTERM) and kills it after 10 s.
func (n *node) stop() error {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.cmd = nil
	n.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(sigterm)
	select {
	case <-exited:
		return nil
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("controller on %s ignored SIGTERM; killed", n.name)
	}
}

// teardown removes the node's fast path (programs, maps, pins) once its controller is
// stopped: the controller's own --teardown, then the pin directory.
func (n *node) teardown(bin string) error {
	if _, err := os.Stat(n.pinDir); os.IsNotExist(err) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "nsenter", "--net="+n.ovn.NetNSPath, filepath.Join(bin, "sdncni-controller"),
		"--teardown", "--bpf-pin-dir", n.pinDir).CombinedOutput()
	rmErr := os.RemoveAll(n.pinDir)
	if err != nil {
		return fmt.Errorf("teardown fast path of %s: %w: %s", n.name, err, out)
	}
	return rmErr
}

func tailFile(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	raw, _ := io.ReadAll(f)
	s := string(raw)
	if len(s) > 3000 {
		s = "…" + s[len(s)-3000:]
	}
	return s
}
