package ovs_test

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sdncni/sdncni/pkg/ovs"
)

func TestEncapIP(t *testing.T) {
	o, v := newVSwitch(t)
	ctx := testCtx(t)
	orig := o.Vsctl(t, "get", "Open_vSwitch", ".", "external_ids:"+ovs.KeyOVNEncapIP)
	t.Cleanup(func() { o.Vsctl(t, "set", "Open_vSwitch", ".", "external_ids:"+ovs.KeyOVNEncapIP+"="+orig) })

	tests := []struct {
		name  string
		value string // "" removes the key
		want  netip.Addr
		err   error
	}{
		{"one address", "100.64.9.1", netip.MustParseAddr("100.64.9.1"), nil},
		{"a list takes the first", `"100.64.9.2,100.64.9.3"`, netip.MustParseAddr("100.64.9.2"), nil},
		{"ipv6", `"fd00::1"`, netip.MustParseAddr("fd00::1"), nil},
		{"unset", "", netip.Addr{}, ovs.ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.value == "" {
				o.Vsctl(t, "remove", "Open_vSwitch", ".", "external_ids", ovs.KeyOVNEncapIP)
			} else {
				o.Vsctl(t, "set", "Open_vSwitch", ".", "external_ids:"+ovs.KeyOVNEncapIP+"="+tc.value)
			}
			// The client's cache sees out-of-band edits a moment later.
			require.Eventually(t, func() bool {
				got, err := v.EncapIP(ctx)
				if tc.err != nil {
					return errors.Is(err, tc.err)
				}
				return err == nil && got == tc.want
			}, 10*time.Second, 20*time.Millisecond)
		})
	}
}

func TestTunnelRemotes(t *testing.T) {
	o, v := newVSwitch(t)
	ctx := testCtx(t)
	const br = "br-tunrem"
	o.Vsctl(t, "add-br", br, "--", "set", "Bridge", br, "datapath_type=netdev",
		"--", "add-port", br, "tr-g1", "--", "set", "Interface", "tr-g1", "type=geneve", "options:remote_ip=100.64.9.7",
		"--", "add-port", br, "tr-g2", "--", "set", "Interface", "tr-g2", "type=geneve", "options:remote_ip=100.64.9.5",
		"--", "add-port", br, "tr-v1", "--", "set", "Interface", "tr-v1", "type=vxlan", "options:remote_ip=100.64.9.7",
		"--", "add-port", br, "tr-flow", "--", "set", "Interface", "tr-flow", "type=geneve", "options:remote_ip=flow",
		"--", "add-port", br, "tr-int", "--", "set", "Interface", "tr-int", "type=internal")
	t.Cleanup(func() { o.Vsctl(t, "--if-exists", "del-br", br) })

	want := []netip.Addr{netip.MustParseAddr("100.64.9.5"), netip.MustParseAddr("100.64.9.7")}
	var got []netip.Addr
	require.Eventually(t, func() bool {
		var err error
		got, err = v.TunnelRemotes(ctx)
		require.NoError(t, err)
		return slices.Equal(got, want)
	}, 10*time.Second, 20*time.Millisecond, "got %v", got)

	o.Vsctl(t, "del-port", br, "tr-g2")
	require.Eventually(t, func() bool {
		got, _ = v.TunnelRemotes(ctx)
		return slices.Equal(got, want[1:])
	}, 10*time.Second, 20*time.Millisecond, "got %v after deleting a port", got)
}
