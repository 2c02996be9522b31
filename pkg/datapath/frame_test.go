//go:build linux

package datapath

import (
	"encoding/binary"
	"net"
	"net/netip"
)

// frame describes a test packet; the zero value of a field means "as sent by a
// well-behaved pod".
type frame struct {
	dstMAC, srcMAC net.HardwareAddr
	etherType      uint16
	vlan           bool
	src, dst       netip.Addr
	fragOff        uint16 // flags+offset field, host order
	ihl            uint8
	proto          uint8  // 0: TCP
	sport, dport   uint16 // 0: 40000 and 80
	tcpFlags       uint8  // TCP header byte 13 (0x02 SYN, 0x10 ACK)
	truncate       int    // keep only this many bytes
}

// bytes builds Ethernet [+802.1Q] + IPv4 + a 20-byte TCP header (the first four bytes,
// the ports, are also a UDP header's).
func (f frame) bytes() []byte {
	b := make([]byte, 0, 64)
	b = append(b, f.dstMAC...)
	b = append(b, f.srcMAC...)
	et := f.etherType
	if et == 0 {
		et = 0x0800
	}
	if f.vlan {
		b = binary.BigEndian.AppendUint16(b, 0x8100)
		b = binary.BigEndian.AppendUint16(b, 42)
	}
	b = binary.BigEndian.AppendUint16(b, et)
	ihl := f.ihl
	if ihl == 0 {
		ihl = 5
	}
	ip := make([]byte, 20)
	ip[0] = 4<<4 | ihl
	binary.BigEndian.PutUint16(ip[2:], 40)
	binary.BigEndian.PutUint16(ip[6:], f.fragOff)
	proto := f.proto
	if proto == 0 {
		proto = 6
	}
	ip[8], ip[9] = 64, proto
	s, d := f.src.As4(), f.dst.As4()
	copy(ip[12:], s[:])
	copy(ip[16:], d[:])
	b = append(b, ip...)
	tcp := make([]byte, 20)
	sport, dport := f.sport, f.dport
	if sport == 0 {
		sport = 40000
	}
	if dport == 0 {
		dport = 80
	}
	binary.BigEndian.PutUint16(tcp[0:], sport)
	binary.BigEndian.PutUint16(tcp[2:], dport)
	tcp[12] = 5 << 4
	tcp[13] = f.tcpFlags
	b = append(b, tcp...)
	for len(b) < 60 {
		b = append(b, 0)
	}
	if f.truncate > 0 {
		b = b[:f.truncate]
	}
	return b
}

// skbContext is the head of struct __sk_buff up to ifindex, the part BPF_PROG_TEST_RUN
// lets us set. ifindex selects the device the program runs on (1 = loopback).
type skbContext struct {
	Len, PktType, Mark, QueueMapping, Protocol, VlanPresent, VlanTCI, VlanProto uint32
	Priority, IngressIfindex, Ifindex                                           uint32
}
