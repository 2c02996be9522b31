//go:build linux

package datapath

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
)

// Endpoint is one pod as the datapath sees it. The interface indexes are in the node
// netns.
type Endpoint struct {
	VPN         uint32
	HostIfIndex int    // host side of the pod's veth
	OVSIfIndex  int    // the pod's OVS internal port
	HostIfName  string // names the TCX link pins; empty in Endpoints() when gone
	OVSIfName   string
	MAC         net.HardwareAddr // pod eth0
	IP          netip.Addr       // pod IPv4
	FastPath    bool             // the pod may use the fast path
}

func (ep Endpoint) validate() error {
	switch {
	case ep.HostIfIndex <= 0 || ep.OVSIfIndex <= 0 || ep.HostIfIndex == ep.OVSIfIndex:
		return fmt.Errorf("%w: interface indexes %d/%d", ErrInvalidEndpoint, ep.HostIfIndex, ep.OVSIfIndex)
	case ep.HostIfName == "" || ep.OVSIfName == "":
		return fmt.Errorf("%w: empty interface name", ErrInvalidEndpoint)
	case len(ep.MAC) != 6:
		return fmt.Errorf("%w: MAC %q", ErrInvalidEndpoint, ep.MAC)
	case !ep.IP.Unmap().Is4():
		return fmt.Errorf("%w: IP %s is not IPv4", ErrInvalidEndpoint, ep.IP)
	}
	return nil
}

func (ep Endpoint) flags() uint8 {
	if ep.FastPath {
		return uint8(bpfEpFlagEP_FASTPATH)
	}
	return 0
}

// be32 returns the IPv4 address as the programs hold it: network byte order in memory.
// An address that is not IPv4 (or the zero Addr of a partly known Endpoint given to
// Detach) maps to 0, which no entry carries.
func be32(ip netip.Addr) uint32 {
	if !ip.Unmap().Is4() {
		return 0
	}
	b := ip.Unmap().As4()
	return binary.NativeEndian.Uint32(b[:])
}

func addrFromBE32(v uint32) netip.Addr {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// entries returns the three map entries describing ep.
func (ep Endpoint) entries() (pod, ovs bpfEndpoint, key bpfDstKey, dst bpfDst) {
	var mac [6]uint8
	copy(mac[:], ep.MAC)
	pod = bpfEndpoint{Vpn: ep.VPN, Ip: be32(ep.IP), Mac: mac, Flags: ep.flags(),
		Role: uint8(bpfRoleROLE_POD), PeerIfindex: uint32(ep.OVSIfIndex)}
	ovs = pod
	ovs.Role, ovs.PeerIfindex = uint8(bpfRoleROLE_OVS), uint32(ep.HostIfIndex)
	key = bpfDstKey{Vpn: ep.VPN, Ip: be32(ep.IP)}
	dst = bpfDst{HostIfindex: uint32(ep.HostIfIndex), Mac: mac, Flags: ep.flags()}
	return pod, ovs, key, dst
}
