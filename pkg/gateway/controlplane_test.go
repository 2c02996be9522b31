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

	"github.com/sdncni/sdncni/internal/testenv"
)

// TestControlPlaneReachesPods: a "pod" behind a management-port-named link echoes UDP.
// From the node network, the API server's address (203.0.113.10) reaches it only when it
// is in the control-plane CIDRs; any other address on the node network (198.18.0.2, e.g.
// another node, where a tenant's egress would come from) never does.
func TestControlPlaneReachesPods(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "ip", "nsenter")
	mk := func() ns.NetNS {
		n, err := testutils.NewNS()
		require.NoError(t, err)
		t.Cleanup(func() { _ = n.Close(); _ = testutils.UnmountNS(n) })
		return n
	}
	node, pod, world := mk(), mk(), mk()
	run := func(n ns.NetNS, args ...string) {
		t.Helper()
		out, err := exec.Command("nsenter", append([]string{"--net=" + n.Path(), "ip"}, args...)...).CombinedOutput()
		require.NoError(t, err, "ip %s: %s", strings.Join(args, " "), out)
	}
	name := func(n ns.NetNS) string { return filepath.Base(n.Path()) }
	run(node, "link", "add", "sdnmtest0", "type", "veth", "peer", "name", "eth0", "netns", name(pod))
	run(node, "link", "add", "out0", "type", "veth", "peer", "name", "eth0", "netns", name(world))
	run(node, "addr", "add", "10.1.0.1/24", "dev", "sdnmtest0")
	run(node, "addr", "add", "198.18.0.1/24", "dev", "out0")
	run(pod, "addr", "add", "10.1.0.5/24", "dev", "eth0")
	run(world, "addr", "add", "198.18.0.2/24", "dev", "eth0")
	run(world, "addr", "add", "203.0.113.10/32", "dev", "lo")
	for _, n := range []ns.NetNS{node, pod, world} {
		run(n, "link", "set", "lo", "up")
	}
	run(pod, "link", "set", "eth0", "up")
	run(world, "link", "set", "eth0", "up")
	run(node, "link", "set", "sdnmtest0", "up")
	run(node, "link", "set", "out0", "up")
	run(pod, "route", "add", "default", "via", "10.1.0.1")
	run(node, "route", "add", "203.0.113.10/32", "via", "198.18.0.2")
	run(world, "route", "add", "10.1.0.0/24", "via", "198.18.0.1")

	var pc net.PacketConn
	require.NoError(t, pod.Do(func(ns.NetNS) error {
		var err error
		pc, err = net.ListenPacket("udp4", "10.1.0.5:5300")
		return err
	}))
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 64)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], from)
		}
	}()
	answered := func(src string) bool {
		t.Helper()
		var ok bool
		require.NoError(t, world.Do(func(ns.NetNS) error {
			c, err := net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(src+":0")),
				net.UDPAddrFromAddrPort(netip.MustParseAddrPort("10.1.0.5:5300")))
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
	write := func(controlPlane ...netip.Prefix) {
		t.Helper()
		require.NoError(t, node.Do(func(ns.NetNS) error {
			if err := DeleteNetfilter(); err != nil {
				return err
			}
			return EnsureNetfilter(nil, controlPlane...)
		}))
	}
	t.Cleanup(func() { _ = node.Do(func(ns.NetNS) error { return DeleteNetfilter() }) })

	write()
	require.False(t, answered("203.0.113.10"), "without control-plane CIDRs nothing enters a pod from the node network")
	write(netip.MustParsePrefix("203.0.113.10/32"))
	require.True(t, answered("203.0.113.10"), "the API server reaches the node's pod")
	require.False(t, answered("198.18.0.2"), "any other source on the node network still does not")
}
