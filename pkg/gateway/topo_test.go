package gateway

import (
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	"github.com/stretchr/testify/require"
)

// gwTopo is a node between a "pod" behind a management-port-named link (sdnmtest0,
// 10.1.0.1 ↔ pod 10.1.0.5/24, the pod's default route) and a "world" on the node
// network (out0, 198.18.0.1/24 ↔ world 198.18.0.2/24), each a netns of its own.
type gwTopo struct {
	t                *testing.T
	node, pod, world ns.NetNS
}

func newGWTopo(t *testing.T) *gwTopo {
	t.Helper()
	mk := func() ns.NetNS {
		n, err := testutils.NewNS()
		require.NoError(t, err)
		t.Cleanup(func() { _ = n.Close(); _ = testutils.UnmountNS(n) })
		return n
	}
	g := &gwTopo{t: t, node: mk(), pod: mk(), world: mk()}
	name := func(n ns.NetNS) string { return filepath.Base(n.Path()) }
	g.ip(g.node, "link", "add", "sdnmtest0", "type", "veth", "peer", "name", "eth0", "netns", name(g.pod))
	g.ip(g.node, "link", "add", "out0", "type", "veth", "peer", "name", "eth0", "netns", name(g.world))
	g.ip(g.node, "addr", "add", "10.1.0.1/24", "dev", "sdnmtest0")
	g.ip(g.node, "addr", "add", "198.18.0.1/24", "dev", "out0")
	g.ip(g.pod, "addr", "add", "10.1.0.5/24", "dev", "eth0")
	g.ip(g.world, "addr", "add", "198.18.0.2/24", "dev", "eth0")
	for _, n := range []ns.NetNS{g.node, g.pod, g.world} {
		g.ip(n, "link", "set", "lo", "up")
	}
	g.ip(g.node, "link", "set", "sdnmtest0", "up")
	g.ip(g.node, "link", "set", "out0", "up")
	g.ip(g.pod, "link", "set", "eth0", "up")
	g.ip(g.world, "link", "set", "eth0", "up")
	g.ip(g.pod, "route", "add", "default", "via", "10.1.0.1")
	t.Cleanup(func() { _ = g.node.Do(func(ns.NetNS) error { return DeleteNetfilter() }) })
	return g
}

// ip runs ip(8) with args in n.
func (g *gwTopo) ip(n ns.NetNS, args ...string) {
	g.t.Helper()
	out, err := exec.Command("nsenter", append([]string{"--net=" + n.Path(), "ip"}, args...)...).CombinedOutput()
	require.NoError(g.t, err, "ip %s: %s", strings.Join(args, " "), out)
}

// echo answers UDP on addr (inside n) with what it receives, until the test ends.
func (g *gwTopo) echo(n ns.NetNS, addr string) {
	g.t.Helper()
	var pc net.PacketConn
	require.NoError(g.t, n.Do(func(ns.NetNS) error {
		var err error
		pc, err = net.ListenPacket("udp4", addr)
		return err
	}))
	g.t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 64)
		for {
			k, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:k], from)
		}
	}()
}

// answered reports whether UDP from src (":0" for any, inside n) to dst gets an echo
// within three tries.
func (g *gwTopo) answered(n ns.NetNS, src, dst string) bool {
	g.t.Helper()
	var ok bool
	require.NoError(g.t, n.Do(func(ns.NetNS) error {
		var laddr *net.UDPAddr
		if src != "" {
			laddr = net.UDPAddrFromAddrPort(netip.MustParseAddrPort(src + ":0"))
		}
		c, err := net.DialUDP("udp4", laddr, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(dst)))
		if err != nil {
			return err
		}
		defer c.Close()
		buf := make([]byte, 64)
		for range 3 {
			_, _ = c.Write([]byte("x"))
			_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			if _, err := c.Read(buf); err == nil {
				ok = true
				return nil
			}
		}
		return nil
	}))
	return ok
}

// table rewrites the node's table sdncni with f.
func (g *gwTopo) table(f Filter) {
	g.t.Helper()
	require.NoError(g.t, g.node.Do(func(ns.NetNS) error {
		if err := DeleteNetfilter(); err != nil {
			return err
		}
		return EnsureNetfilter(f)
	}))
}
