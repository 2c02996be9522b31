package e2e

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sdncni/sdncni/pkg/ipam"
)

// Restart reconciliation (issue 12, item 4): a pod the runtime still has is repaired,
// never removed; only a pod whose netns is gone is cleaned up; a pod whose programs
// cannot be attached is cut off, not let through unchecked.

// hostIfUp reports whether p's host veth is administratively up.
func (n *node) hostIfUp(t *testing.T, p *pod) bool {
	t.Helper()
	out, err := exec.Command("ip", "-n", n.ovn.NetNS, "-o", "link", "show", "dev", hostIf(p)).CombinedOutput()
	require.NoError(t, err, string(out))
	flags := string(out)
	if i, j := strings.Index(flags, "<"), strings.Index(flags, ">"); i >= 0 && j > i {
		flags = flags[i+1 : j]
	}
	for _, f := range strings.Split(flags, ",") {
		if f == "UP" {
			return true
		}
	}
	return false
}

// addresses lists the addresses the node's store holds, by container ID.
func (n *node) addresses(t *testing.T) map[string]netip.Prefix {
	t.Helper()
	st, err := ipam.Open(context.Background(), n.store)
	require.NoError(t, err)
	defer func() { _ = st.Close() }()
	allocs, err := st.List(context.Background())
	require.NoError(t, err)
	out := map[string]netip.Prefix{}
	for _, a := range allocs {
		out[a.Owner.ContainerID] = a.Addr
	}
	return out
}

func (n *node) requireWorking(t *testing.T, pods []*pod, ips []netip.Addr) {
	t.Helper()
	for _, p := range pods {
		require.NoError(t, n.check(t, "1.1.0", p), "CHECK %s", p.name)
	}
	for i, p := range pods {
		ping(t, p, ips[(i+1)%len(pods)])
	}
}

// TestRestartRepairsDeletedOVSPort is the chaos run of item 4: a running pod's OVS port
// is deleted by hand; the next controller start recreates it instead of tearing the
// pod down, and the pod talks again.
func TestRestartRepairsDeletedOVSPort(t *testing.T) {
	n := newNode(t)
	a, b := newPod(t, "ovs-a"), newPod(t, "ovs-b")
	ipA := n.mustAdd(t, "1.1.0", a)
	ipB := n.mustAdd(t, "1.1.0", b)
	ping(t, a, ipB)

	n.ovn.Vsctl(t, "del-port", n.ovn.Bridge, ovsIf(a))
	n.restartController()

	require.Contains(t, strings.Fields(n.ovn.Vsctl(t, "list-ports", n.ovn.Bridge)), ovsIf(a), "OVS port not recreated")
	require.Equal(t, names(a).LSP, n.ovn.Vsctl(t, "get", "Interface", ovsIf(a), "external_ids:iface-id"))
	require.Contains(t, n.addresses(t), a.containerID, "the running pod's address was released")
	n.requireWorking(t, []*pod{a, b}, []netip.Addr{ipA, ipB})
	tcpExchange(t, a, b, ipB)
	tcpExchange(t, b, a, ipA)
	require.Contains(t, n.controllerLog(), "running pod repaired")

	require.NoError(t, n.del(t, "1.1.0", a))
	require.NoError(t, n.del(t, "1.1.0", b))
	require.Empty(t, n.leftovers(t))
}

// TestRestartRepairsRunningPods: while the controller is down, one pod loses its OVS
// port, one its OVN logical switch port, one its BPF program (the pin, and with it the
// TCX link), and one pod's sandbox is deleted. The restarted controller repairs the
// three that run (CHECK passes, they talk) and removes only the one that is gone.
func TestRestartRepairsRunningPods(t *testing.T) {
	n := newNode(t)
	noOVS, noLSP, noProg, peer, gone := newPod(t, "no-ovs"), newPod(t, "no-lsp"), newPod(t, "no-prog"),
		newPod(t, "peer"), newPod(t, "gone")
	running := []*pod{noOVS, noLSP, noProg, peer}
	var ips []netip.Addr
	for _, p := range running {
		ips = append(ips, n.mustAdd(t, "1.1.0", p))
	}
	ipGone := n.mustAdd(t, "1.1.0", gone)

	n.stopController()
	n.ovn.Vsctl(t, "del-port", n.ovn.Bridge, ovsIf(noOVS))
	n.ovn.Nbctl(t, "lsp-del", lspName(noLSP))
	require.NoError(t, os.Remove(filepath.Join(n.pinDir, "links", hostIf(noProg)+"-from_pod")))
	gone.deleteNetns()
	n.startController()

	n.requireWorking(t, running, ips)
	tcpExchange(t, noOVS, noLSP, ips[1])
	tcpExchange(t, noProg, peer, ips[3])
	for _, p := range running {
		require.True(t, n.hostIfUp(t, p), "host veth of %s down", p.name)
	}
	log := n.controllerLog()
	require.Equal(t, 3, strings.Count(log, "running pod repaired"), log)
	require.Contains(t, log, "pod gone; attachment removed")

	gn := names(gone)
	for _, l := range n.leftovers(t) {
		for _, s := range []string{gn.HostIf, gn.OVSIf, gn.LSP, ipGone.String() + "/"} {
			require.NotContains(t, l, s, "the gone pod left %s", l)
		}
	}
	for _, p := range running {
		require.NoError(t, n.del(t, "1.1.0", p))
	}
	require.Empty(t, n.leftovers(t))
}

// nbPID is the PID of the OVN Northbound ovsdb-server this test's environment started.
func (n *node) nbPID(t *testing.T) int {
	t.Helper()
	data, err := os.ReadFile(n.ovn.Env["SDNCNI_NB_PIDFILE"])
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	require.NoError(t, err)
	return pid
}

// TestRestartWhileNorthboundUnavailable: the controller restarts while the Northbound
// ovsdb-server is stopped (SIGSTOP, for 5 s from the moment the new controller has
// connected to it and is adopting its BPF links), and one pod's logical port must be
// recreated. No pod is removed; once NB answers again every pod is whole and talks.
func TestRestartWhileNorthboundUnavailable(t *testing.T) {
	n := newNode(t)
	pods := []*pod{newPod(t, "nb-a"), newPod(t, "nb-b"), newPod(t, "nb-c")}
	var ips []netip.Addr
	for _, p := range pods {
		ips = append(ips, n.mustAdd(t, "1.1.0", p))
	}
	n.stopController()
	n.ovn.Nbctl(t, "lsp-del", lspName(pods[1]))

	nb, err := os.FindProcess(n.nbPID(t))
	require.NoError(t, err)
	resumed := make(chan struct{})
	t.Cleanup(func() { _ = nb.Signal(syscall.SIGCONT) })
	old := n.controllerLog()
	go func() {
		defer close(resumed)
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			if l := n.controllerLog(); l != old && strings.Contains(l, "adopted tcx link") {
				break
			}
			time.Sleep(time.Millisecond)
		}
		_ = nb.Signal(syscall.SIGSTOP)
		time.Sleep(5 * time.Second)
		_ = nb.Signal(syscall.SIGCONT)
	}()
	n.startController()
	held := n.addresses(t)
	for _, p := range pods {
		require.Contains(t, held, p.containerID, "pod %s removed while NB was unavailable", p.name)
	}
	<-resumed

	require.Eventually(t, func() bool {
		for _, p := range pods {
			if n.check(t, "1.1.0", p) != nil {
				return false
			}
		}
		return true
	}, 60*time.Second, 500*time.Millisecond, "pods not whole after NB returned")
	n.requireWorking(t, pods, ips)
	tcpExchange(t, pods[0], pods[1], ips[1])
	log := n.controllerLog()
	require.NotContains(t, log, "pod gone")
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "reconciled") || strings.Contains(l, "repaired") || strings.Contains(l, "unfinished") {
			t.Log(l)
		}
	}
	for _, p := range pods {
		require.NoError(t, n.del(t, "1.1.0", p))
	}
	require.Empty(t, n.leftovers(t))
}

// TestRestartFailsClosed: a running pod whose OVS port name is taken by a port that is
// not ours cannot get its datapath attached. The restarted controller keeps the pod (its
// address stays) but cuts it off: its host veth is down, its packets go nowhere. Once
// the foreign port is gone the background retry repairs it.
func TestRestartFailsClosed(t *testing.T) {
	n := newNode(t)
	a, b, c := newPod(t, "closed-a"), newPod(t, "closed-b"), newPod(t, "closed-c")
	ipA := n.mustAdd(t, "1.1.0", a)
	ipB := n.mustAdd(t, "1.1.0", b)
	ipC := n.mustAdd(t, "1.1.0", c)

	n.stopController()
	n.ovn.Vsctl(t, "del-port", n.ovn.Bridge, ovsIf(a))
	n.ovn.Vsctl(t, "add-port", n.ovn.Bridge, ovsIf(a), "--", "set", "Interface", ovsIf(a), "type=internal")
	n.startController()

	require.False(t, n.hostIfUp(t, a), "a pod without its datapath must be cut off")
	out, err := inPod(a, "ping", "-c", "2", "-i", "0.2", "-W", "1", ipB.String())
	require.Error(t, err, "a pod without its datapath reached a peer:\n%s", out)
	require.Contains(t, n.addresses(t), a.containerID, "the running pod's address was released")
	n.requireWorking(t, []*pod{b, c}, []netip.Addr{ipB, ipC}) // the others are unaffected

	n.ovn.Vsctl(t, "del-port", n.ovn.Bridge, ovsIf(a))
	require.Eventually(t, func() bool { return n.check(t, "1.1.0", a) == nil }, 60*time.Second, 500*time.Millisecond,
		"pod not repaired after the foreign port went")
	require.True(t, n.hostIfUp(t, a))
	n.requireWorking(t, []*pod{a, b, c}, []netip.Addr{ipA, ipB, ipC})

	for _, p := range []*pod{a, b, c} {
		require.NoError(t, n.del(t, "1.1.0", p))
	}
	require.Empty(t, n.leftovers(t))
}
