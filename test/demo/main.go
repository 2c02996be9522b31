package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/sdncni/sdncni/internal/testenv"
)

const (
	// workDir holds the controllers' sockets, stores, logs, the conflists and the state
	// file that --down reads.
	workDir = "/run/sdncni-demo"
	// nsPrefix names the pods' network namespaces; pinPrefix the nodes' bpffs pin dirs.
	nsPrefix  = "sdncni-demo-"
	pinPrefix = "/sys/fs/bpf/sdncni-demo-"
	// defaultCIDR is the default VPN's (namespaces no VPN claims): dns1's, in kube-system.
	defaultCIDR = "10.244.0.0/16"
	// metricsAddr is where each controller serves /metrics, inside its node's netns.
	metricsAddr = "127.0.0.1:9465"
)

type demo struct {
	root, bin, work string
	api             *testenv.APIServer
	cluster         *testenv.Cluster
	nodes           []*node
	pods            []*pod
	state           state

	mu       sync.Mutex
	undo     []undo
	failures []string
}

func main() { os.Exit(run()) }

func run() int {
	// envtest and the client log through controller-runtime's global logger; unset, it
	// prints a "log.SetLogger(...) was never called" stack trace into the demo's output.
	ctrllog.SetLogger(logr.Discard())
	keep := flag.Bool("keep", false, "leave everything running at the end; clean up with Ctrl-C or --down")
	down := flag.Bool("down", false, "clean up what a --keep run (or a run that was killed) left")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "demo: run as root (network namespaces, OVS, eBPF)")
		return 1
	}
	root, err := testenv.ModuleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	if *down {
		return downMode()
	}
	if err := preflight(root); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d := &demo{root: root, bin: filepath.Join(root, "bin"), work: workDir}
	fmt.Println(bold("sdncni demo: two tenants' VPNs on two nodes, a real API server, pods through libcni"))
	fmt.Println("  (Ctrl-C at any time cleans up)")
	if err := os.MkdirAll(d.work, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	d.state.PID = os.Getpid()
	d.saveState()
	d.onCleanup("", func() error { return os.RemoveAll(d.work) })

	err = d.steps(ctx)
	switch {
	case ctx.Err() != nil:
		fmt.Printf("\n%s\n", bold("interrupted: cleaning up"))
	case err != nil:
		d.fail("%v", err)
		fmt.Printf("\n%s %v\n", bold("demo failed:"), err)
		if d.api != nil {
			for _, n := range d.nodes {
				fmt.Printf("--- controller log of %s (tail) ---\n%s\n", n.name, tailFile(n.logPath()))
			}
		}
	case *keep:
		d.printKeep()
		<-ctx.Done()
	}
	d.cleanup()
	d.leftoverCheck()
	fmt.Printf("\n%s\n", bold(fmt.Sprintf("== done in %s", elapsed())))
	if len(d.failures) > 0 {
		fmt.Printf("%d unexpected outcome(s):\n", len(d.failures))
		for _, f := range d.failures {
			fmt.Printf("  ✗ %s\n", f)
		}
		return 1
	}
	if ctx.Err() != nil && !*keep {
		return 130
	}
	fmt.Println("every outcome was the expected one ✓")
	return 0
}

func (d *demo) steps(ctx context.Context) error {
	for _, step := range []func(context.Context) error{
		d.startAPIServer, d.startCluster, d.startControllers, d.createVPNs, d.createPods, d.probes, d.needs, d.showCounters,
	} {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := step(ctx); err != nil {
			return err
		}
	}
	return nil
}

// fail records an outcome that was not the expected one.
func (d *demo) fail(format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.failures = append(d.failures, fmt.Sprintf(format, args...))
}

// preflight checks what the demo needs before starting anything.
func preflight(root string) error {
	for _, b := range []string{"sdncni", "sdncni-controller"} {
		if _, err := os.Stat(filepath.Join(root, "bin", b)); err != nil {
			return fmt.Errorf("bin/%s missing: run 'make build' first (or 'make demo')", b)
		}
	}
	for _, c := range []string{"ovsdb-server", "ovs-vswitchd", "ovn-northd", "ovn-controller", "ovn-nbctl",
		"ovs-vsctl", "iperf3", "ping", "nsenter", "ip", "go"} {
		if _, err := exec.LookPath(c); err != nil {
			return fmt.Errorf("%s not on PATH: run 'make deps' (or 'make demo')", c)
		}
	}
	if s, err := readState(); err == nil {
		if processIs(s.PID, selfComm()) {
			return fmt.Errorf("a demo is already running (pid %d); stop it with Ctrl-C there or 'go run ./test/demo --down'", s.PID)
		}
		return errors.New("an earlier demo left things behind (" + workDir + "); run 'go run ./test/demo --down' first")
	}
	return nil
}

func (d *demo) printKeep() {
	section("Left running (--keep)", "")
	say("from another shell:")
	say("  %s/kubectl --kubeconfig %s get vpn,vpnblocks", d.api.BinDir, d.api.Kubeconfig)
	say("  ovn-nbctl --db=%s show", d.cluster.NBDB)
	a1, a2 := d.pod("a1"), d.pod("a2")
	say("  ip netns exec %s ping -c 3 %s        # %s → %s", a1.netns, a2.ip, a1.name, a2.name)
	say("  ip netns exec %s ovs-vsctl --db=%s show   # node1's OVS", d.nodes[0].ovn.NetNS, d.nodes[0].ovn.OVSDB)
	say("  controller logs: %s", filepath.Join(d.work, "node*/controller.log"))
	say("clean up: Ctrl-C here, or from another shell: go run ./test/demo --down  (or hack/demo.sh down)")
	say("(this program stays in the foreground: it relays the API server into the node netns)")
}

// processIs reports whether pid is alive and its command is comm (which the kernel
// truncates to 15 bytes: "sdncni-controll").
func processIs(pid int, comm string) bool {
	if len(comm) > 15 {
		comm = comm[:15]
	}
	return pid > 0 && commOf(pid) == comm && alive(pid)
}

// selfComm is this program's command name ("demo" under go run): an earlier run that is
// still alive has the same.
func selfComm() string { return commOf(os.Getpid()) }
