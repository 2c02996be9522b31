package ovs_test

import (
	"errors"
	"net/netip"
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
