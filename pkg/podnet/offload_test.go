package podnet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/netip"
	"os/exec"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/safchain/ethtool"
	"github.com/stretchr/testify/require"

	"github.com/sdncni/sdncni/internal/testenv"
)

// TestSetupTxOffload: with TxOffloadOff the pod side has tx checksumming and TCP
// segmentation off; without it the veth keeps its defaults (on).
func TestSetupTxOffload(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "ip", "nsenter", "ethtool")
	tests := []struct {
		name string
		off  bool
	}{
		{"offload off", true},
		{"default offloads", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// A node netns (Setup puts the host side in the caller's netns) and a pod netns.
			nodeNS, podNS := testNetns(t, "node"), testNetns(t, "pod")

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			mac, _ := net.ParseMAC("0a:58:0a:4f:00:05")
			c := Config{NetNS: podNS.Path(), IfName: "eth0", HostIfName: "sdncni2nh0", MAC: mac, MTU: 1442,
				Addr: netip.MustParsePrefix("10.79.0.5/24"), Gateway: netip.MustParseAddr("10.79.0.1"), TxOffloadOff: tc.off}
			require.NoError(t, nodeNS.Do(func(ns.NetNS) error {
				_, err := Setup(ctx, c)
				return err
			}))
			var features map[string]bool
			require.NoError(t, podNS.Do(func(ns.NetNS) error {
				e, err := ethtool.NewEthtool()
				if err != nil {
					return err
				}
				defer e.Close()
				features, err = e.Features("eth0")
				return err
			}))
			for _, name := range []string{"tx-checksum-ip-generic", "tx-tcp-segmentation", "tx-tcp6-segmentation"} {
				require.Equal(t, !tc.off, features[name], name)
			}
			// An independent reader agrees.
			out, err := exec.Command("nsenter", "--net="+podNS.Path(), "ethtool", "-k", "eth0").CombinedOutput()
			require.NoError(t, err, string(out))
			want := "tx-checksumming: on"
			if tc.off {
				want = "tx-checksumming: off"
			}
			require.Contains(t, string(out), want)
		})
	}
}

// testNetns creates a network namespace for t (prefix sdncni-2n-) and deletes it at cleanup.
func testNetns(t *testing.T, role string) ns.NetNS {
	t.Helper()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	name := "sdncni-2n-" + role + "-" + hex.EncodeToString(b)
	out, err := exec.Command("ip", "netns", "add", name).CombinedOutput()
	require.NoError(t, err, string(out))
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	n, err := ns.GetNS("/run/netns/" + name)
	require.NoError(t, err)
	t.Cleanup(func() { _ = n.Close() })
	return n
}
