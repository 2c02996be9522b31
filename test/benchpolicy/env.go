package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containernetworking/cni/libcni"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
	"github.com/sdncni/sdncni/internal/testenv"
)

// prefix names what the benchmark creates: pod netns, bpffs pin dirs.
const prefix = "sdncni-bp-"

// metricsAddr is where each node role serves /metrics, inside its node netns.
const metricsAddr = "127.0.0.1:9465"

// proc is a controller process the harness started.
type proc struct {
	name   string
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
}

func (p *proc) stop() {
	if p == nil || p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.exited
	}
}

// rssMiB reads VmRSS of the process (nsenter execs the controller in place, so the PID
// is the controller's either way).
func (p *proc) rssMiB() float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
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

// env is the benchmark's world: a real API server, a two-node OVS/OVN cluster, the
// cluster role in the root netns and a node role on each node.
type env struct {
	bin, work string
	id        string
	api       *testenv.APIServer
	cl        *testenv.Cluster
	cluster   *proc
	nodes     []*proc
	pins      []string
	stops     []func()

	mu   sync.Mutex
	pods []*bpod
}

// bpod is a pod: a netns, its Pod object, its address.
type bpod struct {
	name, netns, containerID string
	node                     int
	labels                   map[string]string
	ip                       netip.Addr
	echo                     net.PacketConn
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func startEnv(ctx context.Context, bin string) (e *env, err error) {
	e = &env{bin: bin, id: randHex(3)}
	defer func() {
		if err != nil {
			e.stop(context.Background())
			e = nil
		}
	}()
	if e.work, err = os.MkdirTemp("", prefix+"work"); err != nil {
		return e, err
	}
	progress("starting the API server (the first run on a machine builds it: ~15 min)")
	if e.api, err = testenv.LaunchAPIServer(ctx); err != nil {
		return e, err
	}
	for _, n := range []string{"sdncni-system", benchNS} {
		if err := e.api.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}); err != nil {
			return e, fmt.Errorf("create namespace %s: %w", n, err)
		}
	}
	progress("starting a two-node OVS/OVN cluster")
	if e.cl, err = testenv.LaunchCluster(2); err != nil {
		return e, err
	}
	u, err := url.Parse(e.api.Config.Host)
	if err != nil {
		return e, err
	}
	common := []string{"--kubeconfig", e.api.Kubeconfig, "--nb-db", e.cl.NBDB, "--network", "bench-default",
		"--cidr", "10.84.0.0/16", "--node-block-size", "26", "--service-cidr", testenv.ServiceCIDR}
	// The cluster role: NB only, in the root netns (the API server is on its loopback).
	e.cluster, err = e.startProc(nil, "cluster", append([]string{"--role=cluster", "--metrics-addr", "",
		"--leader-election-namespace", "sdncni-system", "--node-name", "bench-cluster"}, common...), "")
	if err != nil {
		return e, err
	}
	for i, o := range e.cl.Nodes {
		stop, err := testenv.Forward(o.NetNSPath, u.Host)
		if err != nil {
			return e, err
		}
		e.stops = append(e.stops, stop)
		pin := "/sys/fs/bpf/" + prefix + e.id + "-" + strconv.Itoa(i)
		e.pins = append(e.pins, pin)
		sock := filepath.Join(e.work, fmt.Sprintf("cni-%d.sock", i))
		p, err := e.startProc(&o.NetNSPath, fmt.Sprintf("node-%d", i), append([]string{"--role=node",
			"--socket", sock, "--ovs-db", o.OVSDB, "--bridge", o.Bridge, "--mtu", "0",
			"--ipam-store", filepath.Join(e.work, fmt.Sprintf("ipam-%d.json", i)), "--bpf-pin-dir", pin,
			"--metrics-addr", metricsAddr, "--node-name", o.SystemID, "-v", "1"}, common...), sock)
		if err != nil {
			return e, err
		}
		e.nodes = append(e.nodes, p)
	}
	progress("creating VPN vpn-bench")
	v := &v1alpha1.VirtualPrivateNetwork{ObjectMeta: metav1.ObjectMeta{Name: "vpn-bench"},
		Spec: v1alpha1.VirtualPrivateNetworkSpec{CIDR: "10.93.0.0/22", Namespaces: []string{benchNS}, NodeBlockSize: 26}}
	if err := e.api.Client.Create(ctx, v); err != nil {
		return e, fmt.Errorf("create vpn: %w", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		var got v1alpha1.VirtualPrivateNetwork
		if e.api.Client.Get(ctx, client.ObjectKey{Name: v.Name}, &got) == nil &&
			meta.IsStatusConditionTrue(got.Status.Conditions, v1alpha1.ConditionReady) && got.Status.VPNID != 0 {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return e, errors.New("vpn-bench not Ready within 60s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return e, nil
}

// startProc starts the controller with args, in netns (nil: the root netns); with sock
// set it waits for the CNI socket to appear.
func (e *env) startProc(netns *string, name string, args []string, sock string) (*proc, error) {
	ctl := filepath.Join(e.bin, "sdncni-controller")
	var cmd *exec.Cmd
	if netns != nil {
		cmd = exec.Command("nsenter", append([]string{"--net=" + *netns, ctl}, args...)...)
	} else {
		cmd = exec.Command(ctl, args...)
	}
	logPath := filepath.Join(e.work, "controller-"+name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	p := &proc{name: name, cmd: cmd, log: logPath, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); f.Close(); close(p.exited) }()
	deadline := time.Now().Add(60 * time.Second)
	for sock != "" {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		select {
		case <-p.exited:
			return nil, fmt.Errorf("controller %s exited before serving:\n%s", name, tailFile(logPath))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("controller %s did not serve within 60s:\n%s", name, tailFile(logPath))
		}
	}
	return p, nil
}

func tailFile(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func (e *env) cniConf(node int) (*libcni.NetworkConfigList, error) {
	sock := filepath.Join(e.work, fmt.Sprintf("cni-%d.sock", node))
	return libcni.ConfListFromBytes([]byte(fmt.Sprintf(
		`{"cniVersion":"1.1.0","name":"sdncni-bench","plugins":[{"type":"sdncni","socket":%q}]}`, sock)))
}

func (p *bpod) rt() *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: p.containerID, NetNS: p.netns, IfName: "eth0",
		Args: [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", benchNS}, {"K8S_POD_NAME", p.name}}}
}

// addPod creates the Pod object, the netns and runs CNI ADD on node; with echo the pod
// answers UDP datagrams on echoPort.
func (e *env) addPod(ctx context.Context, name string, node int, labels map[string]string, echo bool) (*bpod, error) {
	o := e.cl.Nodes[node]
	p := &bpod{name: name, node: node, labels: labels, containerID: "c" + randHex(12)}
	nsName := prefix + e.id + "-" + randHex(4)
	if out, err := exec.Command("ip", "netns", "add", nsName).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add: %w: %s", err, out)
	}
	p.netns = "/run/netns/" + nsName
	e.mu.Lock()
	e.pods = append(e.pods, p)
	e.mu.Unlock()
	if out, err := exec.Command("ip", "-n", nsName, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("lo up: %w: %s", err, out)
	}
	obj := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: benchNS, Name: name, Labels: labels},
		Spec: corev1.PodSpec{NodeName: o.SystemID, Containers: []corev1.Container{{Name: "c", Image: "none"}}}}
	if err := e.api.Client.Create(ctx, obj); err != nil {
		return nil, fmt.Errorf("create pod %s: %w", name, err)
	}
	conf, err := e.cniConf(node)
	if err != nil {
		return nil, err
	}
	actx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	r, err := libcni.NewCNIConfig([]string{e.bin}, nil).AddNetworkList(actx, conf, p.rt())
	if err != nil {
		return nil, fmt.Errorf("ADD %s: %w", name, err)
	}
	res, err := current.NewResultFromResult(r)
	if err != nil {
		return nil, err
	}
	if len(res.IPs) != 1 {
		return nil, fmt.Errorf("ADD %s: %d addresses", name, len(res.IPs))
	}
	p.ip, _ = netip.AddrFromSlice(res.IPs[0].Address.IP.To4())
	if echo {
		if err := inNS(p.netns, func() error {
			var err error
			p.echo, err = net.ListenPacket("udp4", fmt.Sprintf(":%d", echoPort))
			return err
		}); err != nil {
			return nil, err
		}
		go func() {
			buf := make([]byte, 64)
			for {
				n, from, err := p.echo.ReadFrom(buf)
				if err != nil {
					return
				}
				_, _ = p.echo.WriteTo(buf[:n], from)
			}
		}()
	}
	return p, nil
}

// stop deletes every pod (CNI DEL, netns), stops the controllers by PID, the forwards,
// the cluster and the API server, and removes the pin dirs and the work dir.
func (e *env) stop(ctx context.Context) {
	e.mu.Lock()
	pods := e.pods
	e.pods = nil
	e.mu.Unlock()
	if len(pods) > 0 {
		progress(fmt.Sprintf("deleting %d pods", len(pods)))
	}
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, p := range pods {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if p.echo != nil {
				_ = p.echo.Close()
			}
			if conf, err := e.cniConf(p.node); err == nil && len(e.nodes) > p.node {
				dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
				_ = libcni.NewCNIConfig([]string{e.bin}, nil).DelNetworkList(dctx, conf, p.rt())
				cancel()
			}
			_ = exec.Command("ip", "netns", "del", filepath.Base(p.netns)).Run()
		})
	}
	wg.Wait()
	for _, n := range e.nodes {
		n.stop()
	}
	e.cluster.stop()
	for _, s := range e.stops {
		s()
	}
	for _, pin := range e.pins {
		_ = os.RemoveAll(pin)
	}
	if e.cl != nil {
		if err := e.cl.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop cluster:", err)
		}
	}
	if e.api != nil {
		if err := e.api.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop API server:", err)
		}
	}
	if e.work != "" {
		_ = os.RemoveAll(e.work)
	}
}

// inNS runs fn on a thread in the netns at path; sockets it opens stay in that netns.
func inNS(path string, fn func() error) error {
	n, err := ns.GetNS(path)
	if err != nil {
		return err
	}
	defer n.Close()
	return n.Do(func(ns.NetNS) error { return fn() })
}

// datapathCounter scrapes sdncni_datapath_packets_total{reason} from node i's /metrics.
func (e *env) datapathCounter(i int, reason string) (int64, error) {
	all, err := e.datapathCounters(i)
	if err != nil {
		return 0, err
	}
	v, ok := all[reason]
	if !ok {
		return 0, fmt.Errorf("no %s counter", reason)
	}
	return v, nil
}

// datapathCounters scrapes every sdncni_datapath_packets_total{reason} of node i's
// /metrics: reason → packets.
func (e *env) datapathCounters(i int) (map[string]int64, error) {
	var c net.Conn
	if err := inNS(e.cl.Nodes[i].NetNSPath, func() error {
		var err error
		c, err = net.DialTimeout("tcp4", metricsAddr, 5*time.Second)
		return err
	}); err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET /metrics HTTP/1.0\r\nHost: metrics\r\n\r\n"); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]int64{}
	sc := bufio.NewScanner(resp.Body)
	const prefix = `sdncni_datapath_packets_total{reason="`
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), prefix)
		if !ok {
			continue
		}
		reason, v, ok := strings.Cut(rest, `"} `)
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return nil, fmt.Errorf("counter %s: %w", reason, err)
		}
		out[reason] = int64(f)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New("no sdncni_datapath_packets_total in /metrics")
	}
	return out, nil
}

// nbctl runs ovn-nbctl against the cluster's NB.
func (e *env) nbctl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ovn-nbctl", append([]string{"--db=" + e.cl.NBDB, "--timeout=50"}, args...)...).Output()
	return string(out), err
}
