//go:build linux

package crossnode

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
)

// Probe frame layout, shared with bpf/datapath.h (XNODE_PROBE_*).
const (
	probeEtherType = 0x88b5
	probeRequest   = 1
	probeFrameLen  = 60 // inner Ethernet minimum
)

// probeDatagram is the UDP payload of a probe: a VXLAN header with VNI 0 (no VPN has
// it) and an inner frame of type 0x88b5 saying "sdnx" and "request". The inner source
// MAC is derived from local (locally administered), never the device's own MAC (the
// kernel drops such frames as loops).
func probeDatagram(local netip.Addr) []byte {
	b := make([]byte, 8, 8+probeFrameLen)
	b[0] = 0x08 // VNI present
	b = append(b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	l := local.As4()
	b = append(b, 0x02, 0x00, l[0], l[1], l[2], l[3])
	b = binary.BigEndian.AppendUint16(b, probeEtherType)
	b = append(b, 's', 'd', 'n', 'x', probeRequest)
	for len(b) < 8+probeFrameLen {
		b = append(b, 0)
	}
	return b
}

// sendProbes sends one probe to port on each peer, from local (the address the VXLAN
// device's packets leave from, so that the answer comes back the way data would).
func sendProbes(local netip.Addr, port int, peers []netip.Addr) error {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: local.AsSlice()})
	if err != nil {
		return fmt.Errorf("probe socket on %s: %w", local, err)
	}
	defer c.Close()
	msg := probeDatagram(local)
	var first error
	for _, p := range peers {
		if _, err := c.WriteToUDPAddrPort(msg, netip.AddrPortFrom(p, uint16(port))); err != nil && first == nil {
			first = fmt.Errorf("probe %s: %w", p, err)
		}
	}
	return first
}
