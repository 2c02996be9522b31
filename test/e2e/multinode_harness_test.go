package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/stretchr/testify/require"

	"github.com/sdncni/sdncni/internal/testenv"
	"github.com/sdncni/sdncni/pkg/ovs"
)

// Helpers for tests with several nodes (testenv.StartCluster). Names are prefixed "mn"
// where they could clash with the single-node harness.

// mnPrefix names what the multi-node tests create (pod netns, bpffs pin dirs).
const mnPrefix = "sdncni-2n-"

// newClusterNode starts our controller on cluster node o (in its netns), serving the
// e2e network on cidr and allocating from allocRange. extra are further controller flags;
// the pod MTU is left to the topology (--mtu 0).
func newClusterNode(t *testing.T, o *testenv.OVN, cidr, allocRange string, extra ...string) *node {
	t.Helper()
	testenv.RequireCommands(t, "nsenter", "ip", "ping", "ethtool", "ovs-vsctl", "ovn-nbctl", "bpftool")
	bin := binaries(t)
	work, err := os.MkdirTemp("", mnPrefix+"ctl")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(work) })
	n := &node{t: t, ovn: o, bin: bin, work: work, socket: filepath.Join(work, "cni.sock"),
		store: filepath.Join(work, "ipam.json"), pinDir: "/sys/fs/bpf/" + mnPrefix + randHex(4), cidr: cidr,
		extra: append([]string{"--mtu", "0", "--alloc-range", allocRange}, extra...)}
	t.Cleanup(func() {
		n.stopController()
		_ = os.RemoveAll(n.pinDir)
		if t.Failed() {
			t.Logf("controller log of %s:\n%s", o.SystemID, n.controllerLog())
		}
	})
	n.startController()
	return n
}

// newMNPod makes a pod sandbox netns named with the multi-node prefix.
func newMNPod(t *testing.T, name string) *pod {
	t.Helper()
	nsName := mnPrefix + "p-" + randHex(4)
	out, err := exec.Command("ip", "netns", "add", nsName).CombinedOutput()
	require.NoError(t, err, string(out))
	p := &pod{name: name, netns: "/run/netns/" + nsName, containerID: "c" + randHex(12), ifname: "eth0",
		namespace: "default"}
	t.Cleanup(func() { p.deleteNetns() })
	return p
}

// podLeftovers is n.leftovers without the tunnel ports ovn-controller keeps on br-int.
func podLeftovers(t *testing.T, n *node) []string {
	t.Helper()
	var left []string
	for _, l := range n.leftovers(t) {
		if !strings.HasPrefix(l, "ovs port ovn-") {
			left = append(left, l)
		}
	}
	return left
}

// podLinkInfo is what the pod's stack sees of its interface.
type podLinkInfo struct {
	MTU        int
	TxChecksum bool // ethtool's tx-checksumming
	TSO        bool // tx-tcp-segmentation or tx-tcp6-segmentation
}

// podLink reads the pod interface's MTU (ip) and offloads (ethtool), as independent tools.
func podLink(t *testing.T, p *pod) podLinkInfo {
	t.Helper()
	return linkInfo(t, p.netns, p.ifname)
}

// ovsPortLink reads the same of the pod's OVS port (the tap in the node's namespace).
func ovsPortLink(t *testing.T, n *node, p *pod) podLinkInfo {
	t.Helper()
	return linkInfo(t, n.ovn.NetNSPath, ovsIf(p))
}

func linkInfo(t *testing.T, netns, ifname string) podLinkInfo {
	t.Helper()
	run := func(args ...string) []byte {
		out, err := exec.Command("nsenter", append([]string{"--net=" + netns}, args...)...).CombinedOutput()
		require.NoError(t, err, string(out))
		return out
	}
	out := run("ip", "-j", "link", "show", ifname)
	var links []struct {
		MTU int `json:"mtu"`
	}
	require.NoError(t, json.Unmarshal(out, &links), string(out))
	require.Len(t, links, 1)
	out = run("ethtool", "-k", ifname)
	on := func(feature string) bool {
		m := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(feature) + `: (on|off)`).FindStringSubmatch(string(out))
		require.NotNil(t, m, "no %s in ethtool -k:\n%s", feature, out)
		return m[1] == "on"
	}
	// Not ethtool's tcp-segmentation-offload summary: it also counts features that need
	// no checksum offload (tx-tcp-accecn-segmentation on Linux 6.18) and stay on.
	return podLinkInfo{MTU: links[0].MTU, TxChecksum: on("tx-checksumming"),
		TSO: on("tx-tcp-segmentation") || on("tx-tcp6-segmentation")}
}

// waitPing pings dst from p until a reply comes (the first packets across a new tunnel
// may be lost while OVS resolves the remote encap IP), bounded by timeout.
func waitPing(t *testing.T, p *pod, dst netip.Addr, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out, err := inPod(p, "ping", "-c", "1", "-W", "1", dst.String())
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s cannot ping %s within %s:\n%s", p.name, dst, timeout, out)
		}
	}
}

var rttRe = regexp.MustCompile(`rtt min/avg/max/mdev = ([0-9.]+)/([0-9.]+)/([0-9.]+)/`)

// pingRTT sends count echo requests from p to dst, requires every reply and no
// duplicates, and returns the average RTT. size is the ICMP payload; with df set the
// packets must fit the path MTU unfragmented.
func pingRTT(t *testing.T, p *pod, dst netip.Addr, count, size int, df bool) time.Duration {
	t.Helper()
	args := []string{"-q", "-c", strconv.Itoa(count), "-i", "0.02", "-W", "2", "-s", strconv.Itoa(size)}
	if df {
		args = append(args, "-M", "do")
	}
	out, err := inPod(p, "ping", append(args, dst.String())...)
	require.NoError(t, err, "ping %s from %s:\n%s", dst, p.name, out)
	require.Contains(t, string(out), fmt.Sprintf("%d packets transmitted, %d received,", count, count), string(out))
	require.NotContains(t, string(out), "duplicates", string(out))
	m := rttRe.FindStringSubmatch(string(out))
	require.NotNil(t, m, string(out))
	avg, err := strconv.ParseFloat(m[2], 64)
	require.NoError(t, err)
	return time.Duration(avg * float64(time.Millisecond))
}

// tcpTransfer sends size bytes from a to b:port over one TCP connection, requires b to
// receive all of them within timeout and returns the throughput in Gbit/s.
func tcpTransfer(t *testing.T, a, b *pod, ipB netip.Addr, port, size int, timeout time.Duration) float64 {
	t.Helper()
	ln, _ := listenIn(t, b, "tcp4", fmt.Sprintf(":%d", port))
	defer ln.Close()
	l := ln.(*net.TCPListener)
	_ = l.SetDeadline(time.Now().Add(timeout))
	type res struct {
		n   int64
		err error
	}
	done := make(chan res, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- res{err: err}
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(timeout))
		n, err := io.Copy(io.Discard, c)
		done <- res{n, err}
	}()
	addr := netip.AddrPortFrom(ipB, uint16(port)).String()
	c, err := dialFrom(a, "tcp4", addr, 5*time.Second)
	require.NoError(t, err, "dial %s from %s", addr, a.name)
	start := time.Now()
	_ = c.SetDeadline(start.Add(timeout))
	buf := make([]byte, 128<<10)
	for sent := 0; sent < size; sent += len(buf) {
		if _, err := c.Write(buf[:min(len(buf), size-sent)]); err != nil {
			_ = c.Close()
			t.Fatalf("send to %s after %d bytes: %v", addr, sent, err)
		}
	}
	require.NoError(t, c.Close())
	r := <-done // bounded: the receiver's deadlines
	elapsed := time.Since(start)
	require.NoError(t, r.err)
	require.Equal(t, int64(size), r.n, "bytes received")
	return float64(size) * 8 / elapsed.Seconds() / 1e9
}

// gcNode runs CNI GC on n with keep as the valid attachments.
func gcNode(t *testing.T, n *node, version string, keep ...*pod) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := &libcni.GCArgs{}
	for _, p := range keep {
		args.ValidAttachments = append(args.ValidAttachments, types.GCAttachment{ContainerID: p.containerID, IfName: p.ifname})
	}
	require.NoError(t, n.cni().GCNetworkList(ctx, n.confList(t, version), args))
}

// lspsOfNode lists the OVN logical switch ports whose ownership mark names node.
func lspsOfNode(t *testing.T, c *testenv.Cluster, node string) []string {
	t.Helper()
	out := c.Nbctl(t, "--format=json", "--columns=name,external_ids", "list", "Logical_Switch_Port")
	var table struct {
		Data [][]json.RawMessage `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &table), out)
	names := []string{}
	for _, row := range table.Data {
		require.Len(t, row, 2, out)
		var name string
		require.NoError(t, json.Unmarshal(row[0], &name), out)
		// external_ids is ["map", [[key, value], …]].
		var ids []json.RawMessage
		require.NoError(t, json.Unmarshal(row[1], &ids), out)
		require.Len(t, ids, 2, out)
		var pairs [][2]string
		require.NoError(t, json.Unmarshal(ids[1], &pairs), out)
		for _, kv := range pairs {
			if kv[0] == ovs.KeyNode && kv[1] == node {
				names = append(names, name)
			}
		}
	}
	sort.Strings(names)
	return names
}
