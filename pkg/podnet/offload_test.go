package podnet

import (
	"context"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/go-logr/logr/testr"
	"github.com/safchain/ethtool"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sdncni/sdncni/internal/testenv"
)

// TestTxOffload: Setup leaves the pod's offloads on (its segments cross the fast path
// and VXLAN whole); DisableTxOffload turns tx checksumming and TCP segmentation off on a
// link, as sdncni does on the taps into OVS's userspace datapath.
func TestTxOffload(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "ip", "nsenter", "ethtool")
	// A node netns (Setup puts the host side in the caller's netns) and a pod netns.
	nodeNS, podNS := testenv.NetNS(t, "node"), testenv.NetNS(t, "pod")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mac, _ := net.ParseMAC("0a:58:0a:4f:00:05")
	c := Config{NetNS: podNS.Path(), IfName: "eth0", HostIfName: "sdncni2nh0", MAC: mac, MTU: 1442,
		Addr: netip.MustParsePrefix("10.79.0.5/24"), Gateway: netip.MustParseAddr("10.79.0.1")}
	require.NoError(t, nodeNS.Do(func(ns.NetNS) error {
		_, err := Setup(ctx, c)
		return err
	}))
	features := func(n ns.NetNS, ifname string) map[string]bool {
		var f map[string]bool
		require.NoError(t, n.Do(func(ns.NetNS) error {
			e, err := ethtool.NewEthtool()
			if err != nil {
				return err
			}
			defer e.Close()
			f, err = e.Features(ifname)
			return err
		}))
		return f
	}
	ethtoolK := func(n ns.NetNS, ifname string) string {
		out, err := exec.Command("nsenter", "--net="+n.Path(), "ethtool", "-k", ifname).CombinedOutput()
		require.NoError(t, err, string(out))
		return string(out)
	}
	pod := features(podNS, "eth0")
	for _, name := range []string{"tx-checksum-ip-generic", "tx-tcp-segmentation", "tx-tcp6-segmentation"} {
		require.True(t, pod[name], "pod keeps %s", name)
	}
	require.Contains(t, ethtoolK(podNS, "eth0"), "tx-checksumming: on")

	require.NoError(t, nodeNS.Do(func(ns.NetNS) error { return DisableTxOffload("sdncni2nh0") }))
	host := features(nodeNS, "sdncni2nh0")
	for _, name := range []string{"tx-checksum-ip-generic", "tx-tcp-segmentation", "tx-tcp6-segmentation"} {
		require.False(t, host[name], name)
	}
	// An independent reader agrees; the pod side is untouched; a second call is a no-op.
	require.Contains(t, ethtoolK(nodeNS, "sdncni2nh0"), "tx-checksumming: off")
	require.Contains(t, ethtoolK(podNS, "eth0"), "tx-checksumming: on")
	require.NoError(t, nodeNS.Do(func(ns.NetNS) error { return DisableTxOffload("sdncni2nh0") }))
}

// testNetns creates a network namespace for t (prefix sdncni-2n-) and deletes it at cleanup.

// TestKeepTxOffloadOff: a persistent tap, as ovs-vswitchd's internal ports are, whose
// owner sets its offloads again (TUNSETOFFLOAD, what a restarted ovs-vswitchd does)
// gets tx offload off again from KeepTxOffloadOff; a tap it does not match keeps them.
func TestKeepTxOffloadOff(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "ip", "nsenter", "ethtool")
	nodeNS := testenv.NetNS(t, "node")
	txOn := func(ifname string) bool {
		out, err := exec.Command("nsenter", "--net="+nodeNS.Path(), "ethtool", "-k", ifname).CombinedOutput()
		require.NoError(t, err, string(out))
		return strings.Contains(string(out), "tx-checksumming: on")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mine, other *os.File
	require.NoError(t, nodeNS.Do(func(ns.NetNS) error {
		mine, other = openTap(t, "sdtpmine0"), openTap(t, "sdtpother0")
		return KeepTxOffloadOff(ctx, func(name string) bool { return name == "sdtpmine0" }, testr.New(t))
	}))
	waitTx := func(ifname string, want bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for txOn(ifname) != want {
			require.True(t, time.Now().Before(deadline), "%s: tx-checksumming still %t after 5s", ifname, !want)
			time.Sleep(50 * time.Millisecond)
		}
	}
	// The existing tap, at once.
	waitTx("sdtpmine0", false)
	require.True(t, txOn("sdtpother0"))
	// Its owner turns the offloads on again; so it does on the other.
	setTapOffload(t, mine)
	setTapOffload(t, other)
	waitTx("sdtpmine0", false)
	require.True(t, txOn("sdtpother0"))
	// After ctx ends, nothing is undone any more.
	cancel()
	time.Sleep(200 * time.Millisecond)
	setTapOffload(t, mine)
	time.Sleep(500 * time.Millisecond)
	require.True(t, txOn("sdtpmine0"))
}

// openTap creates a tap named name in the calling thread's namespace with checksum and
// TSO offload on (as ovs-vswitchd opens its internal ports), closed at cleanup.
func openTap(t *testing.T, name string) *os.File {
	t.Helper()
	f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Close() })
	ifr, err := unix.NewIfreq(name)
	require.NoError(t, err)
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	require.NoError(t, unix.IoctlIfreq(int(f.Fd()), unix.TUNSETIFF, ifr))
	setTapOffload(t, f)
	return f
}

// setTapOffload is ovs-vswitchd's TUNSETOFFLOAD: checksum and TSO offload on.
func setTapOffload(t *testing.T, f *os.File) {
	t.Helper()
	require.NoError(t, unix.IoctlSetInt(int(f.Fd()), unix.TUNSETOFFLOAD, unix.TUN_F_CSUM|unix.TUN_F_TSO4|unix.TUN_F_TSO6))
}
