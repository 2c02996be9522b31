package gateway

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/go-logr/logr"
	"github.com/google/nftables"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/utils/ptr"

	"github.com/sdncni/sdncni/internal/testenv"
)

// TestPodsReachNoNode: a pod behind a management port opens nothing on its node (UDP
// echo on the node's addresses on both its links), nothing on another node (the world's
// 198.18.0.2 in Filter.Nodes), and reaches the API server at its endpoint
// (198.18.0.2:6443, TCP) only; egress to an address that is no node still works, and
// so do the node's own connections to the pod (replies come back in).
func TestPodsReachNoNode(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "ip", "nsenter")
	g := newGWTopo(t)
	g.ip(g.world, "addr", "add", "198.18.0.3/32", "dev", "lo")
	g.ip(g.node, "route", "add", "default", "via", "198.18.0.2")
	for _, a := range []string{"10.1.0.1:5300", "198.18.0.1:5300"} {
		g.echo(g.node, a)
	}
	g.echo(g.world, "198.18.0.2:5300")
	g.echo(g.world, "198.18.0.3:5300")
	g.echo(g.pod, "10.1.0.5:5300")
	api := g.listenTCP(g.world, "198.18.0.2:6443")
	other := g.listenTCP(g.world, "198.18.0.2:10250") // a kubelet's port

	g.table(Filter{Nodes: []netip.Addr{netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2")},
		APIServers: []netip.AddrPort{netip.MustParseAddrPort("198.18.0.2:6443")}})
	require.False(t, g.answered(g.pod, "", "10.1.0.1:5300"), "the pod reached its node's management address")
	require.False(t, g.answered(g.pod, "", "198.18.0.1:5300"), "the pod reached its node's address")
	require.False(t, g.answered(g.pod, "", "198.18.0.2:5300"), "the pod reached another node")
	require.False(t, g.connects(g.pod, other), "the pod reached another node's kubelet port")
	require.True(t, g.connects(g.pod, api), "the pod must reach the API server's endpoint")
	require.True(t, g.answered(g.pod, "", "198.18.0.3:5300"), "egress to an address that is no node")
	require.True(t, g.answered(g.node, "", "10.1.0.5:5300"), "the node reaches its pod, the reply comes back")
}

// TestNodeSendsPodsNoErrors: the node has no route to 192.0.2.1 and would tell the pod
// so with ICMP net unreachable from its management address; no such error, nor time
// exceeded (TTL 1 through the node), may reach the pod: its socket only times out.
// "Fragmentation needed" still does: a DF datagram larger than the node's uplink MTU
// teaches the pod the path MTU (the next send fails with EMSGSIZE).
func TestNodeSendsPodsNoErrors(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "ip", "nsenter")
	g := newGWTopo(t)
	g.echo(g.world, "198.18.0.2:5300")
	g.table(Filter{})
	require.NoError(t, g.udpSilent(g.pod, "192.0.2.1:5300", 64), "no route: the node must not answer")
	require.NoError(t, g.udpSilent(g.pod, "198.18.0.2:5300", 1), "TTL 1: the node must not answer")
	require.True(t, g.answered(g.pod, "", "198.18.0.2:5300"), "egress to the world works")

	g.ip(g.node, "link", "set", "out0", "mtu", "1280")
	var err error
	require.NoError(t, g.pod.Do(func(ns.NetNS) error {
		c, derr := net.Dial("udp4", "198.18.0.2:5300")
		if derr != nil {
			return derr
		}
		defer c.Close()
		raw, _ := c.(*net.UDPConn).SyscallConn()
		_ = raw.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_MTU_DISCOVER, syscall.IP_PMTUDISC_DO)
		})
		big := make([]byte, 1350)
		for range 20 {
			if _, err = c.Write(big); err != nil {
				return nil
			}
			time.Sleep(50 * time.Millisecond)
		}
		return nil
	}))
	require.ErrorIs(t, err, syscall.EMSGSIZE, "frag-needed from the node must still reach the pod")
}

// TestNodeAddressesAndAPIEndpoints: InternalIP and ExternalIP v4 addresses of every
// node; the API server's ready TCP endpoints.
func TestNodeAddressesAndAPIEndpoints(t *testing.T) {
	nodes := []corev1.Node{{Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: "100.65.0.1"}, {Type: corev1.NodeHostName, Address: "n1"},
		{Type: corev1.NodeExternalIP, Address: "203.0.113.1"}, {Type: corev1.NodeInternalIP, Address: "fd00::1"}}}},
		{Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "100.65.0.2"}}}}}
	require.Equal(t, []netip.Addr{netip.MustParseAddr("100.65.0.1"), netip.MustParseAddr("203.0.113.1"),
		netip.MustParseAddr("100.65.0.2")}, NodeAddresses(nodes))
	tcp := corev1.ProtocolTCP
	s := []discoveryv1.EndpointSlice{{AddressType: discoveryv1.AddressTypeIPv4,
		Ports: []discoveryv1.EndpointPort{{Name: ptr.To("https"), Protocol: &tcp, Port: ptr.To[int32](6443)}},
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"100.65.0.254"}},
			{Addresses: []string{"100.65.0.253"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false)}}}}}
	require.Equal(t, []netip.AddrPort{netip.MustParseAddrPort("100.65.0.254:6443")}, APIEndpoints(s))
}

// listenTCP accepts TCP on addr (inside n) until the test ends and returns addr.
func (g *gwTopo) listenTCP(n ns.NetNS, addr string) string {
	g.t.Helper()
	var l net.Listener
	require.NoError(g.t, n.Do(func(ns.NetNS) error {
		var err error
		l, err = net.Listen("tcp4", addr)
		return err
	}))
	g.t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return addr
}

// connects reports whether a TCP connect from n to addr succeeds within a second.
func (g *gwTopo) connects(n ns.NetNS, addr string) bool {
	g.t.Helper()
	ok := false
	require.NoError(g.t, n.Do(func(ns.NetNS) error {
		c, err := net.DialTimeout("tcp4", addr, time.Second)
		if err == nil {
			ok = true
			c.Close()
		}
		return nil
	}))
	return ok
}

// udpSilent sends datagrams with ttl from n to dst (a connected socket, which reports
// ICMP errors as read errors) and returns an error if anything but a timeout came back.
func (g *gwTopo) udpSilent(n ns.NetNS, dst string, ttl int) error {
	g.t.Helper()
	var got error
	require.NoError(g.t, n.Do(func(ns.NetNS) error {
		c, err := net.Dial("udp4", dst)
		if err != nil {
			return err
		}
		defer c.Close()
		raw, _ := c.(*net.UDPConn).SyscallConn()
		_ = raw.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_TTL, ttl)
			_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_RECVERR, 1)
		})
		buf := make([]byte, 64)
		for range 3 {
			if _, err := c.Write([]byte("x")); err != nil {
				got = err
				return nil
			}
			_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			_, err := c.Read(buf)
			var ne net.Error
			if err == nil || !errors.As(err, &ne) || !ne.Timeout() {
				got = err
				if err == nil {
					got = errors.New("an answer")
				}
				return nil
			}
		}
		return nil
	}))
	return got
}

// TestSetNodesKeepsTheSharedServicesOfARestart: a controller that restarts finds the
// table with the shared Services its predecessor wrote; the node guard's first write
// must not drop them before SetShared has run (DNS would stop for every VPN), and
// SetShared's first write then carries the node guard.
func TestSetNodesKeepsTheSharedServicesOfARestart(t *testing.T) {
	testenv.RequireRoot(t)
	g := newGWTopo(t)
	ctx := context.Background()
	svcChains := func() int {
		n := 0
		require.NoError(t, g.node.Do(func(ns.NetNS) error {
			c, err := nftables.New()
			if err != nil {
				return err
			}
			chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
			if err != nil {
				return err
			}
			for _, ch := range chains {
				if ch.Table.Name == TableName && strings.HasPrefix(ch.Name, "svc-") {
					n++
				}
			}
			return nil
		}))
		return n
	}
	dns := sharedFixture(7, "10.96.0.10:53", "10.1.0.5:5353")
	require.NoError(t, g.node.Do(func(ns.NetNS) error {
		return New(Config{}, nil, nil, nil, logr.Discard()).SetShared(ctx, []SharedService{dns})
	}))
	require.Equal(t, 1, svcChains(), "the first controller's shared Service")
	var next *Gateway
	require.NoError(t, g.node.Do(func(ns.NetNS) error {
		next = New(Config{}, nil, nil, nil, logr.Discard())
		if err := EnsureNetfilter(Filter{}); err != nil {
			return err
		}
		return next.SetNodes(ctx, []netip.Addr{netip.MustParseAddr("198.18.0.2")}, nil)
	}))
	require.Equal(t, 1, svcChains(), "the restarted controller's node guard dropped the shared Services")
	g.echo(g.world, "198.18.0.2:5300")
	require.NoError(t, g.node.Do(func(ns.NetNS) error { return next.SetShared(ctx, []SharedService{dns}) }))
	require.Equal(t, 1, svcChains())
	require.False(t, g.answered(g.pod, "", "198.18.0.2:5300"), "SetShared's write carries the node guard")
}
