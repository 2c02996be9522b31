package e2e

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sdncni/sdncni/internal/testenv"
)

// TestUnderlayARP: a node's encap IP answers ARP once, with the MAC of br-phy's internal
// port, which holds it. The link OVS takes as br-phy's port is still a kernel link (the
// userspace datapath reads it with AF_PACKET), and a kernel answers ARP for any of its
// addresses on any link: without arp_ignore on that link a second answer came from it,
// with its own MAC, and OVS learned whichever came last as the tunnel's next hop. With
// the link's MAC, Geneve to that node went to its kernel instead of its OVS (port
// unreachable) until the next ARP — the cluster DNS then lost queries for up to 20 s.
func TestUnderlayARP(t *testing.T) {
	c := testenv.StartCluster(t, 2)
	for i, n := range c.Nodes {
		want := linkMAC(t, n.NetNSPath, "br-phy")
		got := arpAnswers(t, "/run/netns/"+c.Underlay, "br-ul", netip.MustParseAddr(c.EncapIP(i)))
		require.Equal(t, []string{want.String()}, got, "ARP answers for node %d's encap IP %s", i+1, c.EncapIP(i))
	}
}

// TestTunnelNeighborsKept: the controller keeps the userspace datapath's tunnel
// neighbor cache filled for every Geneve peer, before any pod sends and after the cache
// loses its entries. OVS's native tunneling drops a packet whose tunnel next hop it
// does not know yet (it sends an ARP request instead), and forgets a next hop after 15
// minutes without use: with the cross-node path carrying most pod traffic, Geneve
// between two nodes idles that long, and the next DNS query through it was lost.
func TestTunnelNeighborsKept(t *testing.T) {
	c := testenv.StartCluster(t, 2)
	n1 := newClusterNode(t, c.Nodes[0], "10.79.0.0/24", "10.79.0.0/25")
	_ = newClusterNode(t, c.Nodes[1], "10.79.0.0/24", "10.79.0.128/25")
	peer := c.EncapIP(1)
	want := linkMAC(t, c.Nodes[1].NetNSPath, "br-phy").String()
	known := func() bool { return tunnelNeighbor(t, n1, peer) == want }
	require.Eventually(t, known, 30*time.Second, 200*time.Millisecond,
		"node 1's OVS has no tunnel next hop %s for node 2 (%s) without pod traffic", want, peer)

	// ovs-vswitchd loses its cache (flush, restart, 15 minutes idle): it is filled again
	// without a packet of the pods. (The kernel re-resolves the managed entry within
	// its reachable time plus the probe delay, about a minute at most.)
	n1.ovn.Appctl(t, "tnl/neigh/flush")
	require.Empty(t, tunnelNeighbor(t, n1, peer))
	require.Eventually(t, known, 90*time.Second, time.Second,
		"node 1's OVS did not learn node 2's tunnel next hop again after a flush")
}

// tunnelNeighbor is the MAC in n's ovs-vswitchd tunnel neighbor cache for ip, or "".
func tunnelNeighbor(t *testing.T, n *node, ip string) string {
	t.Helper()
	for _, l := range strings.Split(n.ovn.Appctl(t, "tnl/neigh/show"), "\n") {
		if f := strings.Fields(l); len(f) >= 3 && f[0] == ip && !strings.Contains(l, "STALE") {
			return f[1]
		}
	}
	return ""
}

// linkMAC is the MAC of link ifname in the network namespace at path.
func linkMAC(t *testing.T, path, ifname string) net.HardwareAddr {
	t.Helper()
	var mac net.HardwareAddr
	inNetNS(t, path, func() error {
		ifc, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		mac = ifc.HardwareAddr
		return nil
	})
	return mac
}

// arpAnswers sends one ARP request for ip on ifname (in the namespace at path), from an
// address no one holds, and returns the sender MAC of every answer within a second.
func arpAnswers(t *testing.T, path, ifname string, ip netip.Addr) []string {
	t.Helper()
	var got []string
	inNetNS(t, path, func() error {
		ifc, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ARP)))
		if err != nil {
			return err
		}
		defer func() { _ = unix.Close(fd) }()
		sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: ifc.Index}
		if err := unix.Bind(fd, sa); err != nil {
			return err
		}
		sender := netip.MustParseAddr("100.64.0.253").As4()
		target := ip.As4()
		req := binary.BigEndian.AppendUint16(nil, 1)                 // Ethernet
		req = binary.BigEndian.AppendUint16(req, unix.ETH_P_IP)      // IPv4
		req = append(req, 6, 4, 0, 1)                                // lengths, request
		req = append(append(req, ifc.HardwareAddr...), sender[:]...) // sender
		req = append(append(req, make([]byte, 6)...), target[:]...)  // target
		frame := ethFrame(net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, ifc.HardwareAddr, nil, unix.ETH_P_ARP, req)
		if err := unix.Sendto(fd, frame, 0, sa); err != nil {
			return fmt.Errorf("send ARP request: %w", err)
		}
		buf := make([]byte, 1500)
		for end := time.Now().Add(time.Second); time.Now().Before(end); {
			tv := unix.NsecToTimeval(time.Until(end).Nanoseconds())
			if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
				return err
			}
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				continue
			}
			a := buf[14:n]
			// An answer: op 2, sender IP = ip, target = our request's sender.
			if n >= 42 && binary.BigEndian.Uint16(a[6:]) == 2 && bytes.Equal(a[14:18], target[:]) &&
				bytes.Equal(a[24:28], sender[:]) {
				got = append(got, net.HardwareAddr(a[8:14]).String())
			}
		}
		return nil
	})
	return got
}
