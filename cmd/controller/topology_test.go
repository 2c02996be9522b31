package main

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTopology(t *testing.T) {
	ip := netip.MustParseAddr
	tests := []struct {
		name     string
		topo     topology
		mode     string
		datapath string
		mtu      int
		offOff   bool // tx offload off
	}{
		{"no encap ip", topology{}, txOffloadAuto, "netdev", 1400, false},
		{"loopback encap (single node)", topology{EncapIP: ip("127.0.0.1"), EncapLink: "lo", EncapMTU: 65536}, txOffloadAuto, "netdev", 1400, false},
		{"userspace tunnel", topology{EncapIP: ip("100.64.0.1"), EncapLink: "br-phy", EncapMTU: 1500}, txOffloadAuto, "netdev", 1442, true},
		{"userspace tunnel, jumbo", topology{EncapIP: ip("100.64.0.1"), EncapLink: "br-phy", EncapMTU: 9000}, txOffloadAuto, "netdev", 8942, true},
		{"ipv6 underlay", topology{EncapIP: ip("fd00::1"), EncapLink: "br-phy", EncapMTU: 1500}, txOffloadAuto, "netdev", 1422, true},
		{"kernel datapath keeps offloads", topology{EncapIP: ip("100.64.0.1"), EncapLink: "eth0", EncapMTU: 1500}, txOffloadAuto, "system", 1442, false},
		{"encap ip on no local link", topology{EncapIP: ip("100.64.0.1")}, txOffloadAuto, "netdev", 1400, true},
		{"forced on", topology{EncapIP: ip("100.64.0.1"), EncapMTU: 1500}, txOffloadOn, "netdev", 1442, false},
		{"forced off", topology{}, txOffloadOff, "netdev", 1400, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.mtu, tc.topo.podMTU())
			require.Equal(t, tc.offOff, tc.topo.txOffloadOff(tc.mode, tc.datapath))
		})
	}
}
