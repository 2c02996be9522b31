package e2e

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestHostileTenant is the adversarial suite of the security issue: a tenant pod with
// root in its netns writes raw frames on its eth0 (AF_PACKET) and tries to get them to
// a neighbour of its own VPN under a false identity, or into other VPNs. Every victim
// captures every frame on its own eth0 (AF_PACKET, before the IP stack, VLAN tags and
// bad addresses included), so "nothing arrives" means nothing reached the interface,
// not that the victim's IP stack discarded it. A correct frame sent the same way must
// arrive (the control). The same attacks run with the fast path on and off.
//
// Networks: default and tenant-b share 10.77.0.0/24; tenant-c is 10.88.0.0/24.
// Pods: attacker a, victim v and bystander w (whose identity a borrows) in default; y in
// tenant-b, z in tenant-c. (Node and control-plane addresses: pkg/gateway's
// TestPodsReachNoNode and TestRealCluster; other VPNs' Service VIPs: TestServiceClusterIP.)
func TestHostileTenant(t *testing.T) {
	nets := writeNetworksFile(t,
		testNetwork{Name: "tenant-b", ID: 2, CIDR: "10.77.0.0/24", MTU: 1400, FastPath: true, Namespaces: []string{"ns-b"}},
		testNetwork{Name: "tenant-c", ID: 3, CIDR: "10.88.0.0/24", MTU: 1400, FastPath: true, Namespaces: []string{"ns-c"}})
	args := []string{"--metrics-addr", metricsAddr, "--networks-file", nets}
	n := newNode(t, withControllerArgs(args...))
	const v = "1.1.0"
	type who struct {
		*pod
		ip  netip.Addr
		mac net.HardwareAddr
	}
	add := func(name, k8sNS string) *who {
		p := newPodIn(t, name, k8sNS)
		ip := n.mustAdd(t, v, p)
		t.Cleanup(func() { _ = n.del(t, v, p) })
		return &who{pod: p, ip: ip, mac: podMAC(t, p)}
	}
	a, vic, w := add("a", "default"), add("v", "default"), add("w", "default")
	y, z := add("y", "ns-b"), add("z", "ns-c")
	for _, p := range []*who{a, vic, w, y, z} {
		t.Logf("%s: %s %s", p.name, p.ip, p.mac)
	}
	// Let OVN's port security and the fast path's entries settle: a correct ping works.
	for _, p := range []*who{vic, w} {
		ping(t, a.pod, p.ip)
	}

	for _, mode := range []struct {
		name string
		fast bool
	}{{"fast path on", true}, {"fast path off", false}} {
		if !mode.fast {
			n.restartController(append(args, "--fast-path=false")...)
			ping(t, a.pod, vic.ip)
		}
		t.Run(mode.name, func(t *testing.T) {
			sinks := map[string]*frameSink{}
			for _, p := range []*who{vic, w, y, z} {
				sinks[p.name] = captureFrames(t, p.pod)
			}
			var seq atomic.Int64
			// send writes count frames built by f (with a fresh marker each) and returns
			// the marker.
			send := func(f func(marker []byte) []byte) []byte {
				marker := []byte(fmt.Sprintf("sdncni-attack-%08d", seq.Add(1)))
				rawSend(t, a.pod, f(marker), 5)
				return marker
			}
			udp := func(src, dst *who, srcIP netip.Addr, srcMAC net.HardwareAddr) func([]byte) []byte {
				return func(m []byte) []byte {
					return ethFrame(dst.mac, srcMAC, nil, 0x0800, ipv4Packet(srcIP, dst.ip, nil, 0, false, udpDatagram(m)))
				}
			}
			settle := func() { time.Sleep(700 * time.Millisecond) }

			// Control: the same raw path with a's own identity arrives at v.
			ctl := send(udp(a, vic, a.ip, a.mac))
			require.Eventually(t, func() bool { return sinks["v"].seen(ctl) }, 5*time.Second, 50*time.Millisecond,
				"control: a correct raw frame from a must reach v")

			// Each attack names the pods that must not see it: a false identity, nobody
			// (not even its addressee); an honest frame aimed into another VPN, no pod of
			// another VPN (its addressee or a broadcast in a's own VPN may see it).
			all, otherVPNs := []string{"v", "w", "y", "z"}, []string{"y", "z"}
			attacks := []struct {
				name  string
				never []string
				frame func([]byte) []byte
			}{
				{"source IP of w", all, udp(a, vic, w.ip, a.mac)},
				{"source MAC of w", all, udp(a, vic, a.ip, w.mac)},
				{"source IP and MAC of w", all, udp(a, vic, w.ip, w.mac)},
				{"source IP outside the VPN", all, udp(a, vic, netip.MustParseAddr("10.99.0.1"), a.mac)},
				{"VLAN tag 100", all, func(m []byte) []byte {
					tag := uint16(100)
					return ethFrame(vic.mac, a.mac, &tag, 0x0800, ipv4Packet(a.ip, vic.ip, nil, 0, false, udpDatagram(m)))
				}},
				{"QinQ tags", all, func(m []byte) []byte {
					inner := make([]byte, 4)
					binary.BigEndian.PutUint16(inner, 200)
					binary.BigEndian.PutUint16(inner[2:], 0x0800)
					tag := uint16(100)
					return ethFrame(vic.mac, a.mac, &tag, 0x8100, append(inner, ipv4Packet(a.ip, vic.ip, nil, 0, false, udpDatagram(m))...))
				}},
				{"non-first fragment with w's source", all, func(m []byte) []byte {
					return ethFrame(vic.mac, a.mac, nil, 0x0800, ipv4Packet(w.ip, vic.ip, nil, 1, false, append(make([]byte, 8), m...)))
				}},
				{"first fragment with w's source", all, func(m []byte) []byte {
					return ethFrame(vic.mac, a.mac, nil, 0x0800, ipv4Packet(w.ip, vic.ip, nil, 0, true, udpDatagram(m)))
				}},
				{"loose source route into tenant-c", otherVPNs, func(m []byte) []byte {
					lsrr := append([]byte{0x83, 7, 4}, z.ip.AsSlice()...)
					lsrr = append(lsrr, 0) // end of options, padding to 8 bytes
					return ethFrame(vic.mac, a.mac, nil, 0x0800, ipv4Packet(a.ip, vic.ip, lsrr, 0, false, udpDatagram(m)))
				}},
				{"to tenant-b's pod (same address space)", otherVPNs, udp(a, y, a.ip, a.mac)},
				{"to tenant-c's pod", otherVPNs, udp(a, z, a.ip, a.mac)},
				{"broadcast MAC to tenant-b's address", otherVPNs, func(m []byte) []byte {
					bc := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
					return ethFrame(bc, a.mac, nil, 0x0800, ipv4Packet(a.ip, y.ip, nil, 0, false, udpDatagram(m)))
				}},
			}
			markers := map[string][]byte{}
			for _, at := range attacks {
				markers[at.name] = send(at.frame)
			}
			// ARP: a claims w's address to v (a reply, and a gratuitous request).
			arpReply := ethFrame(vic.mac, a.mac, nil, 0x0806, arpPacket(2, a.mac, w.ip, vic.mac, vic.ip))
			arpGrat := ethFrame(net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, a.mac, nil, 0x0806,
				arpPacket(1, a.mac, w.ip, make(net.HardwareAddr, 6), w.ip))
			rawSend(t, a.pod, arpReply, 5)
			rawSend(t, a.pod, arpGrat, 5)
			settle()

			var leaks []string
			for _, at := range attacks {
				for _, name := range at.never {
					if sinks[name].seen(markers[at.name]) {
						leaks = append(leaks, fmt.Sprintf("%s reached %s", at.name, name))
					}
				}
			}
			claim := arpClaim(a.mac, w.ip)
			for name, s := range sinks {
				if s.match(claim) {
					leaks = append(leaks, "ARP claiming w's address with a's MAC reached "+name)
				}
			}
			out, _ := inPod(vic.pod, "ip", "neigh", "show", w.ip.String())
			if strings.Contains(strings.ToLower(string(out)), a.mac.String()) {
				leaks = append(leaks, "v's neighbour table maps w's address to a's MAC: "+strings.TrimSpace(string(out)))
			}
			require.Empty(t, leaks, "%s: frames of a hostile tenant got through", mode.name)
			// After all that, v and w still reach each other, at the right pod.
			ping(t, vic.pod, w.ip)
			t.Logf("%s: %d attacks and 2 ARP spoofs, nothing reached any victim; control frame arrived", mode.name, len(attacks))
		})
	}
}

// podMAC is the MAC of p's eth0.
func podMAC(t *testing.T, p *pod) net.HardwareAddr {
	t.Helper()
	var mac net.HardwareAddr
	inNetNS(t, p.netns, func() error {
		ifc, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		mac = ifc.HardwareAddr
		return nil
	})
	return mac
}

// rawSend writes frame count times on p's eth0 through an AF_PACKET socket.
func rawSend(t *testing.T, p *pod, frame []byte, count int) {
	t.Helper()
	inNetNS(t, p.netns, func() error {
		ifc, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		defer func() { _ = unix.Close(fd) }()
		sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifc.Index}
		for range count {
			if err := unix.Sendto(fd, frame, 0, sa); err != nil {
				return fmt.Errorf("send raw frame: %w", err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		return nil
	})
}

// frameSink keeps every frame received on a pod's eth0 until the test ends.
type frameSink struct {
	mu     sync.Mutex
	frames [][]byte
}

func (s *frameSink) match(f func([]byte) bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, fr := range s.frames {
		if f(fr) {
			return true
		}
	}
	return false
}

func (s *frameSink) seen(marker []byte) bool {
	return s.match(func(fr []byte) bool { return bytes.Contains(fr, marker) })
}

// captureFrames opens an AF_PACKET socket on p's eth0 (incoming frames only) and
// collects what arrives, bounded to 20,000 frames.
func captureFrames(t *testing.T, p *pod) *frameSink {
	t.Helper()
	s := &frameSink{}
	var fd int
	inNetNS(t, p.netns, func() error {
		ifc, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifc.Index}); err != nil {
			_ = unix.Close(fd)
			return err
		}
		// The kernel hands AF_PACKET the frame with its VLAN tag taken out into
		// metadata (rx offload); ask for it back as an auxiliary record and put it back.
		return unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1)
	})
	tv := unix.Timeval{Usec: 200000}
	require.NoError(t, unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv))
	var done atomic.Bool
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		buf := make([]byte, 65536)
		oob := make([]byte, 256)
		for !done.Load() {
			k, oobn, _, from, err := unix.Recvmsg(fd, buf, oob, 0)
			if err != nil {
				continue
			}
			if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
				continue
			}
			fr := append([]byte(nil), buf[:k]...)
			if tci, ok := auxVLAN(oob[:oobn]); ok && len(fr) >= 12 {
				tag := []byte{0x81, 0x00, byte(tci >> 8), byte(tci)}
				fr = append(append(append([]byte(nil), fr[:12]...), tag...), fr[12:]...)
			}
			s.mu.Lock()
			if len(s.frames) < 20000 {
				s.frames = append(s.frames, fr)
			}
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() { done.Store(true); <-stopped; _ = unix.Close(fd) })
	return s
}

// auxVLAN returns the VLAN TCI of a PACKET_AUXDATA record, if the frame had a tag.
func auxVLAN(oob []byte) (uint16, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, false
	}
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_PACKET || m.Header.Type != unix.PACKET_AUXDATA || len(m.Data) < 20 {
			continue
		}
		// struct tpacket_auxdata: status u32, len u32, snaplen u32, mac u16, net u16,
		// vlan_tci u16, vlan_tpid u16.
		status := binary.NativeEndian.Uint32(m.Data[0:])
		if status&unix.TP_STATUS_VLAN_VALID != 0 {
			return binary.NativeEndian.Uint16(m.Data[16:]), true
		}
	}
	return 0, false
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// ethFrame builds an Ethernet frame, with an 802.1Q tag when vlan is set.
func ethFrame(dst, src net.HardwareAddr, vlan *uint16, etherType uint16, payload []byte) []byte {
	f := append(append([]byte{}, dst...), src...)
	if vlan != nil {
		f = binary.BigEndian.AppendUint16(f, 0x8100)
		f = binary.BigEndian.AppendUint16(f, *vlan)
	}
	f = binary.BigEndian.AppendUint16(f, etherType)
	return append(f, payload...)
}

// ipv4Packet builds an IPv4 packet (UDP unless it is a non-first fragment) with options
// (a multiple of 4 bytes), fragment offset fragOff (in 8-byte units) and the MF flag.
func ipv4Packet(src, dst netip.Addr, options []byte, fragOff uint16, more bool, payload []byte) []byte {
	hl := 20 + len(options)
	h := make([]byte, hl)
	h[0] = 0x40 | byte(hl/4)
	binary.BigEndian.PutUint16(h[2:], uint16(hl+len(payload)))
	binary.BigEndian.PutUint16(h[4:], 0x5dc0) // identification
	flags := fragOff
	if more {
		flags |= 0x2000
	}
	binary.BigEndian.PutUint16(h[6:], flags)
	h[8] = 64
	h[9] = unix.IPPROTO_UDP
	copy(h[12:], src.AsSlice())
	copy(h[16:], dst.AsSlice())
	copy(h[20:], options)
	binary.BigEndian.PutUint16(h[10:], checksum(h))
	return append(h, payload...)
}

// udpDatagram is UDP from port 40000 to 7005 around payload, checksum left 0 (allowed
// in IPv4).
func udpDatagram(payload []byte) []byte {
	u := make([]byte, 8)
	binary.BigEndian.PutUint16(u[0:], 40000)
	binary.BigEndian.PutUint16(u[2:], 7005)
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(payload)))
	return append(u, payload...)
}

// arpPacket builds an Ethernet/IPv4 ARP request (op 1) or reply (op 2).
func arpPacket(op uint16, sha net.HardwareAddr, spa netip.Addr, tha net.HardwareAddr, tpa netip.Addr) []byte {
	p := []byte{0, 1, 8, 0, 6, 4}
	p = binary.BigEndian.AppendUint16(p, op)
	p = append(p, sha...)
	p = append(p, spa.AsSlice()...)
	p = append(p, tha...)
	return append(p, tpa.AsSlice()...)
}

// arpClaim matches an ARP frame whose sender is (mac, ip).
func arpClaim(mac net.HardwareAddr, ip netip.Addr) func([]byte) bool {
	want := append(append([]byte{}, mac...), ip.AsSlice()...)
	return func(fr []byte) bool {
		return len(fr) >= 42 && binary.BigEndian.Uint16(fr[12:]) == 0x0806 && bytes.Equal(fr[22:32], want)
	}
}

func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}
