package main

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/stretchr/testify/require"

	"github.com/sdncni/sdncni/internal/testenv"
	"github.com/sdncni/sdncni/pkg/ovs"
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
		{"cross-node vxlan, same mtu: geneve is the smaller", topology{EncapIP: ip("100.64.0.1"), EncapMTU: 1500, XNodeMTU: 1500}, txOffloadAuto, "netdev", 1442, true},
		{"cross-node vxlan on a smaller link", topology{EncapIP: ip("100.64.0.1"), EncapMTU: 1500, XNodeMTU: 1480}, txOffloadAuto, "netdev", 1430, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.mtu, tc.topo.podMTU())
			require.Equal(t, tc.offOff, tc.topo.txOffloadOff(tc.mode, tc.datapath))
		})
	}
}

// TestWaitTopology, against a real Open_vSwitch ovsdb-server: ovn-controller's container
// writes ovn-encap-ip as the controller starts; with --encap-ip-wait the controller
// decides the topology from it once it is there, without it (0) from the row as it is.
func TestWaitTopology(t *testing.T) {
	o := testenv.StartOVN(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	vs, err := ovs.NewVSwitch(ctx, o.OVSDB, logr.Discard())
	require.NoError(t, err)
	t.Cleanup(vs.Close)
	encap := strings.Trim(strings.TrimSpace(o.Vsctl(t, "get", "Open_vSwitch", ".", "external_ids:ovn-encap-ip")), `"`)
	o.Vsctl(t, "remove", "Open_vSwitch", ".", "external_ids", "ovn-encap-ip")

	topo, err := waitTopology(ctx, vs, 0, logr.Discard())
	require.NoError(t, err)
	require.False(t, topo.EncapIP.IsValid(), "no wait: no encap ip yet")

	go func() {
		time.Sleep(500 * time.Millisecond)
		o.Vsctl(t, "set", "Open_vSwitch", ".", "external_ids:ovn-encap-ip="+encap)
	}()
	start := time.Now()
	topo, err = waitTopology(ctx, vs, 20*time.Second, logr.Discard())
	require.NoError(t, err)
	require.Equal(t, encap, topo.EncapIP.String(), "the encap ip written after the start")
	require.Less(t, time.Since(start), 10*time.Second)

	o.Vsctl(t, "remove", "Open_vSwitch", ".", "external_ids", "ovn-encap-ip")
	start = time.Now()
	topo, err = waitTopology(ctx, vs, time.Second, logr.Discard())
	require.NoError(t, err)
	require.False(t, topo.EncapIP.IsValid())
	require.GreaterOrEqual(t, time.Since(start), time.Second, "waited its bound, then went on without")
}

func TestParsePeer(t *testing.T) {
	b, err := parsePeer("1:10.78.0.128/25=100.65.0.2")
	require.NoError(t, err)
	require.Equal(t, uint32(1), b.VPN)
	require.Equal(t, netip.MustParsePrefix("10.78.0.128/25"), b.Block)
	require.Equal(t, netip.MustParseAddr("100.65.0.2"), b.Node)
	for _, bad := range []string{"10.78.0.128/25=100.65.0.2", "0:10.78.0.128/25=100.65.0.2", "16777216:10.78.0.0/24=1.2.3.4",
		"1:10.78.0.129/25=100.65.0.2", "1:fd00::/64=100.65.0.2", "1:10.78.0.0/24=fd00::1", "1:10.78.0.0/24"} {
		_, err := parsePeer(bad)
		require.Error(t, err, bad)
	}
}
