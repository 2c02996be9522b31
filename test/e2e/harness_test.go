package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/stretchr/testify/require"

	"github.com/sdncni/sdncni/internal/testenv"
	"github.com/sdncni/sdncni/pkg/attach"
	"github.com/sdncni/sdncni/pkg/gateway"
	"github.com/sdncni/sdncni/pkg/ipam"
)

// Spec versions the binary claims; every ADD/DEL test runs for each.
var specVersions = []string{"1.0.0", "1.1.0"}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds sdncni and sdncni-controller once per test run.
func binaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := testenv.ModuleRoot()
		if err != nil {
			buildErr = err
			return
		}
		binDir, err = os.MkdirTemp("", "sdncni-e2e-bin")
		if err != nil {
			buildErr = err
			return
		}
		for name, pkg := range map[string]string{"sdncni": "./cmd/cni-plugin", "sdncni-controller": "./cmd/controller"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, name), pkg)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("build %s: %w\n%s", pkg, err, out)
				return
			}
		}
	})
	require.NoError(t, buildErr)
	return binDir
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// node is one simulated node: OVS/OVN in a netns and our controller running in it.
type node struct {
	t      *testing.T
	ovn    *testenv.OVN
	bin    string
	work   string
	socket string
	store  string
	pinDir string
	cidr   string
	extra  []string

	mu      sync.Mutex
	ctrl    *exec.Cmd
	ctrlOut *bytes.Buffer
	exited  chan struct{}
}

type nodeOption func(*node)

func withCIDR(c string) nodeOption { return func(n *node) { n.cidr = c } }
func withControllerArgs(a ...string) nodeOption {
	return func(n *node) { n.extra = append(n.extra, a...) }
}

func newNode(t *testing.T, opts ...nodeOption) *node {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "nsenter", "ip", "ping", "ovs-vsctl", "ovn-nbctl", "bpftool")
	bin := binaries(t)
	ovn := testenv.StartOVN(t)
	work, err := os.MkdirTemp("", "sdncni-e2e")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(work) })
	n := &node{t: t, ovn: ovn, bin: bin, work: work, socket: filepath.Join(work, "cni.sock"),
		store: filepath.Join(work, "ipam.json"), pinDir: "/sys/fs/bpf/sdncni-e2e-" + randHex(4), cidr: "10.77.0.0/24"}
	for _, o := range opts {
		o(n)
	}
	t.Cleanup(func() {
		n.stopController()
		_ = os.RemoveAll(n.pinDir)
		if t.Failed() {
			t.Logf("controller log:\n%s", n.controllerLog())
		}
	})
	n.startController()
	return n
}

func (n *node) startController() {
	t := n.t
	t.Helper()
	args := []string{"--net=" + n.ovn.NetNSPath, filepath.Join(n.bin, "sdncni-controller"),
		"--socket", n.socket, "--ovs-db", n.ovn.OVSDB, "--nb-db", n.ovn.NBDB, "--bridge", n.ovn.Bridge,
		"--network", "e2e", "--cidr", n.cidr, "--mtu", "1400", "--ipam-store", n.store,
		"--bpf-pin-dir", n.pinDir, "--metrics-addr", "", "--node-name", n.ovn.SystemID, "-v", "1"}
	args = append(args, n.extra...)
	cmd := exec.Command("nsenter", args...)
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = &lockedWriter{w: out}, &lockedWriter{w: out}
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	n.mu.Lock()
	n.ctrl, n.ctrlOut, n.exited = cmd, out, exited
	n.mu.Unlock()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(n.socket); err == nil {
			return
		}
		select {
		case <-exited:
			t.Fatalf("controller exited before serving:\n%s", out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("controller did not serve within 60s:\n%s", out.String())
		}
	}
}

// killController SIGKILLs the controller (a crash) and waits for it to be gone.
func (n *node) killController() {
	n.mu.Lock()
	cmd, exited := n.ctrl, n.exited
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-exited
	_ = os.Remove(n.socket)
}

// stopController asks the controller to stop (SIGTERM), then kills it after 10s.
func (n *node) stopController() {
	n.mu.Lock()
	cmd, exited := n.ctrl, n.exited
	n.ctrl = nil
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-exited
	}
}

func (n *node) controllerLog() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ctrlOut == nil {
		return ""
	}
	return n.ctrlOut.String()
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// confList is the network configuration a runtime would read from /etc/cni/net.d.
func (n *node) confList(t *testing.T, version string) *libcni.NetworkConfigList {
	t.Helper()
	raw := fmt.Sprintf(`{"cniVersion":%q,"name":"sdncni-e2e","plugins":[{"type":"sdncni","socket":%q,"logFile":%q}]}`,
		version, n.socket, filepath.Join(n.work, "cni.log"))
	l, err := libcni.ConfListFromBytes([]byte(raw))
	require.NoError(t, err)
	return l
}

func (n *node) cni() *libcni.CNIConfig {
	return libcni.NewCNIConfig([]string{n.bin}, nil)
}

// pod is a network namespace standing in for a pod sandbox.
type pod struct {
	name, netns, containerID, ifname string
	namespace                        string // Kubernetes namespace (K8S_POD_NAMESPACE)
}

func newPod(t *testing.T, name string) *pod {
	t.Helper()
	return newPodIn(t, name, "default")
}

// newPodIn makes a pod of the Kubernetes namespace k8sNamespace (which picks its network).
func newPodIn(t *testing.T, name, k8sNamespace string) *pod {
	t.Helper()
	ns := "sdncni-e2e-" + randHex(4)
	out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput()
	require.NoError(t, err, string(out))
	// Runtimes bring the sandbox's loopback up (the loopback plugin); so do we.
	out, err = exec.Command("ip", "-n", ns, "link", "set", "lo", "up").CombinedOutput()
	require.NoError(t, err, string(out))
	p := &pod{name: name, netns: "/run/netns/" + ns, containerID: "c" + randHex(12), ifname: "eth0",
		namespace: k8sNamespace}
	t.Cleanup(func() { p.deleteNetns() })
	return p
}

func (p *pod) deleteNetns() {
	_ = exec.Command("ip", "netns", "del", filepath.Base(p.netns)).Run()
}

func (p *pod) rt() *libcni.RuntimeConf {
	return &libcni.RuntimeConf{
		ContainerID: p.containerID, NetNS: p.netns, IfName: p.ifname,
		Args: [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", p.namespace}, {"K8S_POD_NAME", p.name}},
	}
}

func (n *node) add(t *testing.T, version string, p *pod) (*current.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := n.cni().AddNetworkList(ctx, n.confList(t, version), p.rt())
	if err != nil {
		return nil, err
	}
	return current.NewResultFromResult(res)
}

func (n *node) mustAdd(t *testing.T, version string, p *pod) netip.Addr {
	t.Helper()
	res, err := n.add(t, version, p)
	require.NoError(t, err)
	require.Len(t, res.IPs, 1)
	a, ok := netip.AddrFromSlice(res.IPs[0].Address.IP.To4())
	require.True(t, ok)
	return a
}

func (n *node) del(t *testing.T, version string, p *pod) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return n.cni().DelNetworkList(ctx, n.confList(t, version), p.rt())
}

func (n *node) check(t *testing.T, version string, p *pod) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return n.cni().CheckNetworkList(ctx, n.confList(t, version), p.rt())
}

// leftovers lists every resource of ours that still exists on the node: OVS ports, OVN
// logical switch ports, addresses, links in the node netns and fast-path map entries.
func (n *node) leftovers(t *testing.T) []string {
	t.Helper()
	var left []string
	// A VPN's management port (pkg/gateway) belongs to the node, not to a pod.
	for _, p := range strings.Fields(n.ovn.Vsctl(t, "list-ports", n.ovn.Bridge)) {
		if !strings.HasPrefix(p, gateway.PortPrefix) {
			left = append(left, "ovs port "+p)
		}
	}
	for _, line := range strings.Split(n.ovn.Nbctl(t, "--bare", "--columns=name", "find", "Logical_Switch_Port", "type=\"\""), "\n") {
		if s := strings.TrimSpace(line); s != "" && !strings.HasPrefix(s, "sdncni-mp-") {
			left = append(left, "ovn lsp "+s)
		}
	}
	st, err := ipam.Open(context.Background(), n.store)
	require.NoError(t, err)
	allocs, err := st.List(context.Background())
	require.NoError(t, err)
	_ = st.Close()
	for _, a := range allocs {
		if !strings.HasPrefix(a.Owner.ContainerID, attach.NodeOwnerPrefix) {
			left = append(left, "address "+a.Addr.String())
		}
	}
	out, err := exec.Command("ip", "-n", n.ovn.NetNS, "-o", "link", "show").CombinedOutput()
	require.NoError(t, err, string(out))
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 {
			name := strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0]
			if attach.IsOurLink(name) {
				left = append(left, "link "+name)
			}
		}
	}
	for _, m := range []string{"sdncni_ep", "sdncni_dst"} {
		left = append(left, mapEntries(t, filepath.Join(n.pinDir, "maps", m))...)
	}
	return left
}

// mapEntries lists the entries of a pinned BPF map with bpftool (an independent reader).
func mapEntries(t *testing.T, pin string) []string {
	t.Helper()
	if _, err := os.Stat(pin); err != nil {
		return nil
	}
	out, err := exec.Command("bpftool", "-j", "map", "dump", "pinned", pin).CombinedOutput()
	require.NoError(t, err, string(out))
	var entries []json.RawMessage
	require.NoError(t, json.Unmarshal(out, &entries), string(out))
	var left []string
	for _, e := range entries {
		left = append(left, "map entry in "+filepath.Base(pin)+": "+string(e))
	}
	return left
}

// inPod runs a command inside the pod's network namespace.
func inPod(p *pod, name string, args ...string) ([]byte, error) {
	return exec.Command("nsenter", append([]string{"--net=" + p.netns, name}, args...)...).CombinedOutput()
}

func names(p *pod) attach.Names {
	return attach.NamesFor(attach.Key{ContainerID: p.containerID, IfName: p.ifname})
}
func hostIf(p *pod) string  { return names(p).HostIf }
func ovsIf(p *pod) string   { return names(p).OVSIf }
func lspName(p *pod) string { return names(p).LSP }

// restartController stops the controller (SIGTERM) and starts it again with extra as its
// extra flags (replacing those of withControllerArgs).
func (n *node) restartController(extra ...string) {
	n.t.Helper()
	n.stopController()
	n.extra = extra
	n.startController()
}

// metricsAddr is where withMetrics makes the controller serve /metrics, inside the node
// netns (each node has its own loopback, so one fixed port serves every node).
const metricsAddr = "127.0.0.1:9465"

// withMetrics makes the controller serve Prometheus metrics on metricsAddr in the node netns.
func withMetrics() nodeOption { return withControllerArgs("--metrics-addr", metricsAddr) }

// testNetwork is one entry of a --networks-file.
type testNetwork struct {
	Name       string   `json:"name"`
	ID         uint32   `json:"id"`
	CIDR       string   `json:"cidr"`
	MTU        int      `json:"mtu,omitempty"`
	FastPath   bool     `json:"fastPath"`
	Namespaces []string `json:"namespaces"`
}

// writeNetworksFile writes a --networks-file for nets and returns its path.
func writeNetworksFile(t *testing.T, nets ...testNetwork) string {
	t.Helper()
	data, err := json.Marshal(map[string][]testNetwork{"networks": nets})
	require.NoError(t, err)
	f := filepath.Join(t.TempDir(), "networks.json")
	require.NoError(t, os.WriteFile(f, data, 0o644))
	return f
}

// datapathCounters scrapes sdncni_datapath_packets_total from the controller's /metrics
// (withMetrics), from inside the node netns: reason → packets.
func (n *node) datapathCounters(t *testing.T) map[string]int64 {
	t.Helper()
	body := n.scrapeMetrics(t)
	counts := map[string]int64{}
	const prefix = `sdncni_datapath_packets_total{reason="`
	for _, line := range strings.Split(string(body), "\n") {
		rest, ok := strings.CutPrefix(line, prefix)
		if !ok {
			continue
		}
		reason, val, ok := strings.Cut(rest, `"} `)
		require.True(t, ok, "metric line %q", line)
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		require.NoError(t, err, "metric line %q", line)
		counts[reason] = int64(v)
	}
	require.Contains(t, counts, "redirect_fast", "no datapath counters in /metrics:\n%s", body)
	return counts
}

// scrapeMetrics returns the controller's /metrics page (withMetrics), read from inside
// the node netns.
func (n *node) scrapeMetrics(t *testing.T) []byte {
	t.Helper()
	nodeNS, err := ns.GetNS(n.ovn.NetNSPath)
	require.NoError(t, err)
	defer nodeNS.Close()
	// Dial inside the netns on this locked thread; the socket stays in that netns. (An
	// http.Client would dial from another goroutine, i.e. maybe another netns.)
	var c net.Conn
	require.NoError(t, nodeNS.Do(func(ns.NetNS) error {
		var err error
		c, err = net.DialTimeout("tcp4", metricsAddr, 5*time.Second)
		return err
	}))
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = io.WriteString(c, "GET /metrics HTTP/1.0\r\nHost: metrics\r\n\r\n")
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	return body
}

// portCounters are packet counters of one interface.
type portCounters struct{ rx, tx int64 }

func (c portCounters) sub(o portCounters) portCounters { return portCounters{c.rx - o.rx, c.tx - o.tx} }
func (c portCounters) sum() int64                      { return c.rx + c.tx }

// ovsPortCounters reads OVS's packet counters of the pod's OVS port live over OpenFlow
// (ovs-ofctl dump-ports on the bridge's management socket; the Interface statistics
// column in OVSDB is only refreshed every few seconds). rx is what OVS received from the
// pod, tx what OVS sent to it.
func (n *node) ovsPortCounters(t *testing.T, p *pod) portCounters {
	t.Helper()
	mgmt := filepath.Join(n.ovn.Env["SDNCNI_NODE_DIR"], n.ovn.Bridge+".mgmt")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ovs-ofctl", "-O", "OpenFlow13", "dump-ports", "unix:"+mgmt, ovsIf(p)).CombinedOutput()
	require.NoError(t, err, string(out))
	c, err := parseDumpPorts(string(out))
	require.NoError(t, err)
	return c
}

// parseDumpPorts reads the packet counters of the one port in ovs-ofctl dump-ports output:
//
//	port  "sdno…": rx pkts=10, bytes=1234, drop=0, errs=0, frame=0, over=0, crc=0
//	         tx pkts=2, bytes=99, drop=0, errs=0, coll=0
func parseDumpPorts(out string) (portCounters, error) {
	var c portCounters
	var seenRx, seenTx bool
	for _, line := range strings.Split(out, "\n") {
		l := strings.TrimSpace(line)
		if strings.HasPrefix(l, "port ") {
			_, rest, ok := strings.Cut(l, ": ")
			if !ok {
				continue
			}
			l = rest
		}
		dir, rest, ok := strings.Cut(l, " pkts=")
		if !ok || (dir != "rx" && dir != "tx") {
			continue
		}
		v, err := strconv.ParseInt(strings.SplitN(rest, ",", 2)[0], 10, 64)
		if err != nil {
			return c, fmt.Errorf("parse dump-ports line %q: %w", line, err)
		}
		if dir == "rx" {
			c.rx, seenRx = v, true
		} else {
			c.tx, seenTx = v, true
		}
	}
	if !seenRx || !seenTx {
		return c, fmt.Errorf("parse dump-ports: no rx/tx counters in %q", out)
	}
	return c, nil
}

// podLinkCounters reads the packet counters of the pod's eth0 (what the pod's stack
// sent and received; GSO packets count once, as they do in the tc programs).
func podLinkCounters(t *testing.T, p *pod) portCounters {
	t.Helper()
	out, err := inPod(p, "ip", "-j", "-s", "link", "show", p.ifname)
	require.NoError(t, err, string(out))
	var links []struct {
		Stats64 struct {
			RX struct{ Packets int64 } `json:"rx"`
			TX struct{ Packets int64 } `json:"tx"`
		} `json:"stats64"`
	}
	require.NoError(t, json.Unmarshal(out, &links), string(out))
	require.Len(t, links, 1)
	return portCounters{rx: links[0].Stats64.RX.Packets, tx: links[0].Stats64.TX.Packets}
}
