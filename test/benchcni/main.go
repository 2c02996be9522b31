// Command benchcni measures pod ADD and DEL latency through libcni against a real
// controller, OVS and OVN on this machine (100 sequential, then 20-way parallel), and the
// controller's RSS with 200 pods. It prints figures; it asserts nothing.
//
//	go run ./test/benchcni [-n 100] [-parallel 20] [-pods 200]   (root; after make build)
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containernetworking/cni/libcni"
)

type opts struct {
	n, parallel, pods int
	bin, dir          string
	vpns, podsPerVPN  int
}

func main() {
	o := opts{}
	flag.IntVar(&o.n, "n", 100, "sequential ADD/DEL pairs")
	flag.IntVar(&o.parallel, "parallel", 20, "parallel ADDs (then DELs) in one burst, repeated to n")
	flag.IntVar(&o.pods, "pods", 200, "pods alive when the controller's RSS is read")
	flag.StringVar(&o.bin, "bin", "bin", "directory with sdncni and sdncni-controller")
	flag.StringVar(&o.dir, "dir", "/run/sdncni-benchcni", "work directory")
	flag.IntVar(&o.vpns, "vpns", 0, "VPN mode: a real API server and this many VirtualPrivateNetworks (0: the static single network)")
	flag.IntVar(&o.podsPerVPN, "pods-per-vpn", 20, "VPN mode: pods per VPN alive when the controller's RSS is read")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	runFn := run
	if o.vpns > 0 {
		runFn = runVPNs
	}
	if err := runFn(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "benchcni:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o opts) error {
	bin, err := filepath.Abs(o.bin)
	if err != nil {
		return err
	}
	e, err := startEnv(ctx, bin, o.dir)
	if err != nil {
		return err
	}
	defer e.stop()

	fmt.Printf("sdncni CNI benchmark: OVS netdev + OVN, %d CPUs\n\n", cpus())
	seqAdd, seqDel, err := e.sequential(ctx, o.n)
	if err != nil {
		return err
	}
	parAdd, parDel, err := e.parallel(ctx, o.n, o.parallel)
	if err != nil {
		return err
	}
	fmt.Printf("%-28s %8s %8s %8s %8s\n", "operation", "p50", "p99", "max", "n")
	printRow("ADD sequential", seqAdd)
	printRow("DEL sequential", seqDel)
	printRow(fmt.Sprintf("ADD %d-way parallel", o.parallel), parAdd)
	printRow(fmt.Sprintf("DEL %d-way parallel", o.parallel), parDel)

	rss, err := e.rssWith(ctx, o.pods, o.parallel)
	if err != nil {
		return err
	}
	fmt.Printf("\ncontroller RSS with %d pods: %.1f MiB (before: %.1f MiB)\n", o.pods, rss[1], rss[0])
	return nil
}

func printRow(name string, d []time.Duration) {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	q := func(p float64) time.Duration { return d[min(len(d)-1, int(p*float64(len(d))))] }
	fmt.Printf("%-28s %8s %8s %8s %8d\n", name, q(0.50).Round(100*time.Microsecond),
		q(0.99).Round(100*time.Microsecond), d[len(d)-1].Round(100*time.Microsecond), len(d))
}

func cpus() int {
	out, _ := exec.Command("nproc").Output()
	n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return n
}

type env struct {
	bin, dir, netnsPath string
	ctrl                *exec.Cmd
	cni                 *libcni.CNIConfig
	conf                *libcni.NetworkConfigList
	mu                  sync.Mutex
	nsSeq               int
}

func startEnv(ctx context.Context, bin, dir string) (*env, error) {
	return startEnvWith(ctx, bin, dir, nil)
}

// startEnvWith starts OVS/OVN and the controller; before the controller starts, prep
// gets the node's netns path and returns extra controller flags.
func startEnvWith(ctx context.Context, bin, dir string, prep func(netnsPath string) ([]string, error)) (*env, error) {
	_ = os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	e := &env{bin: bin, dir: dir}
	up := exec.CommandContext(ctx, "hack/dev-env.sh", "up", "--dir", filepath.Join(dir, "ovn"), "--netns", "sdncni-bench-node")
	up.Stderr = os.Stderr
	if err := up.Run(); err != nil {
		return nil, fmt.Errorf("dev-env up: %w", err)
	}
	vars, err := readEnv(filepath.Join(dir, "ovn", "env"))
	if err != nil {
		e.stop()
		return nil, err
	}
	e.netnsPath = vars["SDNCNI_NETNS_PATH"]
	sock := filepath.Join(dir, "cni.sock")
	logf, err := os.Create(filepath.Join(dir, "controller.log"))
	if err != nil {
		e.stop()
		return nil, err
	}
	var extra []string
	if prep != nil {
		if extra, err = prep(e.netnsPath); err != nil {
			e.stop()
			return nil, err
		}
	}
	args := append([]string{"--net=" + e.netnsPath, filepath.Join(bin, "sdncni-controller"),
		"--socket", sock, "--ovs-db", vars["SDNCNI_OVS_DB"], "--nb-db", vars["SDNCNI_NB_DB"],
		"--network", "bench", "--cidr", "10.250.0.0/16", "--ipam-store", filepath.Join(dir, "ipam.json"),
		"--bpf-pin-dir", "/sys/fs/bpf/sdncni-bench", "--metrics-addr", "", "--node-name", vars["SDNCNI_SYSTEM_ID"]}, extra...)
	e.ctrl = exec.Command("nsenter", args...)
	e.ctrl.Stdout, e.ctrl.Stderr = logf, logf
	if err := e.ctrl.Start(); err != nil {
		e.stop()
		return nil, err
	}
	for i := 0; ; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if i > 600 {
			e.stop()
			return nil, fmt.Errorf("controller did not start; see %s", logf.Name())
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.cni = libcni.NewCNIConfig([]string{bin}, nil)
	e.conf, err = libcni.ConfListFromBytes([]byte(fmt.Sprintf(
		`{"cniVersion":"1.1.0","name":"bench","plugins":[{"type":"sdncni","socket":%q}]}`, sock)))
	if err != nil {
		e.stop()
		return nil, err
	}
	return e, nil
}

func readEnv(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	vars := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimPrefix(strings.TrimSpace(line), "export ")
		if k, v, ok := strings.Cut(line, "="); ok {
			vars[k] = strings.Trim(v, `"'`)
		}
	}
	return vars, nil
}

func (e *env) stop() {
	if e.ctrl != nil && e.ctrl.Process != nil {
		_ = e.ctrl.Process.Signal(syscall.SIGTERM)
		_ = e.ctrl.Wait()
	}
	_ = os.RemoveAll("/sys/fs/bpf/sdncni-bench")
	down := exec.Command("hack/dev-env.sh", "down", "--dir", filepath.Join(e.dir, "ovn"), "--netns", "sdncni-bench-node")
	down.Stderr = os.Stderr
	_ = down.Run()
	_ = os.RemoveAll(e.dir)
}

// pod is a netns standing in for a sandbox.
type pod struct{ name, path, k8sNamespace string }

func (e *env) newPod() (pod, error) {
	e.mu.Lock()
	e.nsSeq++
	name := fmt.Sprintf("sdncni-bench-%d", e.nsSeq)
	e.mu.Unlock()
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return pod{}, fmt.Errorf("ip netns add: %w: %s", err, out)
	}
	return pod{name: name, path: "/run/netns/" + name, k8sNamespace: "bench"}, nil
}

func (p pod) remove() { _ = exec.Command("ip", "netns", "del", p.name).Run() }

func (p pod) rt() *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: p.name, NetNS: p.path, IfName: "eth0",
		Args: [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", p.k8sNamespace}, {"K8S_POD_NAME", p.name}}}
}

func (e *env) add(ctx context.Context, p pod) (time.Duration, error) {
	start := time.Now()
	_, err := e.cni.AddNetworkList(ctx, e.conf, p.rt())
	return time.Since(start), err
}

func (e *env) del(ctx context.Context, p pod) (time.Duration, error) {
	start := time.Now()
	err := e.cni.DelNetworkList(ctx, e.conf, p.rt())
	return time.Since(start), err
}

func (e *env) sequential(ctx context.Context, n int) (adds, dels []time.Duration, err error) {
	for i := range n {
		fmt.Fprintf(os.Stderr, "\rsequential %d/%d", i+1, n)
		p, err := e.newPod()
		if err != nil {
			return nil, nil, err
		}
		a, err := e.add(ctx, p)
		if err != nil {
			p.remove()
			return nil, nil, fmt.Errorf("add: %w", err)
		}
		d, err := e.del(ctx, p)
		p.remove()
		if err != nil {
			return nil, nil, fmt.Errorf("del: %w", err)
		}
		adds, dels = append(adds, a), append(dels, d)
	}
	fmt.Fprintln(os.Stderr)
	return adds, dels, nil
}

func (e *env) parallel(ctx context.Context, n, width int) (adds, dels []time.Duration, err error) {
	for done := 0; done < n; done += width {
		fmt.Fprintf(os.Stderr, "\rparallel %d/%d", done+width, n)
		pods, err := e.makePods(width)
		if err != nil {
			return nil, nil, err
		}
		a, err := e.burst(ctx, pods, e.add)
		if err != nil {
			e.cleanup(ctx, pods)
			return nil, nil, err
		}
		d, err := e.burst(ctx, pods, e.del)
		e.cleanup(ctx, pods)
		if err != nil {
			return nil, nil, err
		}
		adds, dels = append(adds, a...), append(dels, d...)
	}
	fmt.Fprintln(os.Stderr)
	return adds, dels, nil
}

func (e *env) makePods(n int) ([]pod, error) {
	var pods []pod
	for range n {
		p, err := e.newPod()
		if err != nil {
			for _, q := range pods {
				q.remove()
			}
			return nil, err
		}
		pods = append(pods, p)
	}
	return pods, nil
}

func (e *env) cleanup(ctx context.Context, pods []pod) {
	for _, p := range pods {
		_, _ = e.del(ctx, p)
		p.remove()
	}
}

func (e *env) burst(ctx context.Context, pods []pod, op func(context.Context, pod) (time.Duration, error)) ([]time.Duration, error) {
	out := make([]time.Duration, len(pods))
	errs := make([]error, len(pods))
	var wg sync.WaitGroup
	for i, p := range pods {
		wg.Go(func() { out[i], errs[i] = op(ctx, p) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// rssWith adds pods pods, reads the controller's RSS, and removes them again.
func (e *env) rssWith(ctx context.Context, pods, width int) ([2]float64, error) {
	var rss [2]float64
	rss[0] = e.rssMiB()
	var all []pod
	defer func() { e.cleanup(ctx, all) }()
	for len(all) < pods {
		fmt.Fprintf(os.Stderr, "\rpods up %d/%d", len(all), pods)
		batch, err := e.makePods(min(width, pods-len(all)))
		if err != nil {
			return rss, err
		}
		all = append(all, batch...)
		if _, err := e.burst(ctx, batch, e.add); err != nil {
			return rss, err
		}
	}
	fmt.Fprintln(os.Stderr)
	rss[1] = e.rssMiB()
	return rss, nil
}

// rssMiB reads VmRSS of the controller (the child of nsenter, which execs it in place).
func (e *env) rssMiB() float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", e.ctrl.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

func mustAbs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}
