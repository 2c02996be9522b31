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

// TestServiceCIDRStaysOnNode: a "pod" behind a management-port-named link sends UDP to
// a ClusterIP that no shared Service DNATs. The node's default route leads to a "world"
// netns that happens to hold that address. With the table written without service
// CIDRs the node forwards and masquerades the packet and the world answers (control);
// with the service CIDR configured the node drops it, while ordinary egress still works.
func TestServiceCIDRStaysOnNode(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "ip", "nsenter")
	mk := func() ns.NetNS {
		n, err := testutils.NewNS()
		require.NoError(t, err)
		t.Cleanup(func() { _ = n.Close(); _ = testutils.UnmountNS(n) })
		return n
	}
	node, client, world := mk(), mk(), mk()
	run := func(n ns.NetNS, args ...string) {
		t.Helper()
		full := append([]string{"--net=" + n.Path(), "ip"}, args...)
		out, err := exec.Command("nsenter", full...).CombinedOutput()
		require.NoError(t, err, "ip %s: %s", strings.Join(args, " "), out)
	}
	name := func(n ns.NetNS) string { return filepath.Base(n.Path()) }
	run(node, "link", "add", "sdnmtest0", "type", "veth", "peer", "name", "eth0", "netns", name(client))
	run(node, "link", "add", "out0", "type", "veth", "peer", "name", "eth0", "netns", name(world))
	run(node, "addr", "add", "10.1.0.1/24", "dev", "sdnmtest0")
	run(node, "addr", "add", "198.18.0.1/30", "dev", "out0")
	run(client, "addr", "add", "10.1.0.5/24", "dev", "eth0")
	run(world, "addr", "add", "198.18.0.2/30", "dev", "eth0")
	run(world, "addr", "add", "10.96.0.10/32", "dev", "lo")
	for _, n := range []ns.NetNS{node, client, world} {
		run(n, "link", "set", "lo", "up")
	}
	run(node, "link", "set", "sdnmtest0", "up")
	run(node, "link", "set", "out0", "up")
	run(client, "link", "set", "eth0", "up")
	run(world, "link", "set", "eth0", "up")
	run(client, "route", "add", "default", "via", "10.1.0.1")
	run(node, "route", "add", "default", "via", "198.18.0.2")

	// The world echoes on 5300 on both its addresses (one socket each, so each answer
	// leaves from the address that was asked).
	for _, a := range []string{"10.96.0.10", "198.18.0.2"} {
		var pc net.PacketConn
		require.NoError(t, world.Do(func(ns.NetNS) error {
			var err error
			pc, err = net.ListenPacket("udp4", a+":5300")
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
	}
	answered := func(dst string) bool {
		t.Helper()
		var ok bool
		require.NoError(t, client.Do(func(ns.NetNS) error {
			c, err := net.Dial("udp4", dst+":5300")
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
	write := func(cidrs ...netip.Prefix) {
		t.Helper()
		require.NoError(t, node.Do(func(ns.NetNS) error {
			if err := DeleteNetfilter(); err != nil {
				return err
			}
			return EnsureNetfilter(cidrs)
		}))
	}
	write()
	require.True(t, answered("10.96.0.10"), "control: without a service CIDR the node forwards the ClusterIP out")
	write(netip.MustParsePrefix("10.96.0.0/12"))
	require.False(t, answered("10.96.0.10"), "a ClusterIP nobody DNATed must not leave the node")
	require.True(t, answered("198.18.0.2"), "egress is untouched")
	require.NoError(t, node.Do(func(ns.NetNS) error { return DeleteNetfilter() }))
}
