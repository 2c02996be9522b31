package v1alpha1_test

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
)

func TestBlockName(t *testing.T) {
	for _, tc := range []struct {
		vpn, block, want string
	}{
		{"blue", "10.1.0.64/26", "blue.10-1-0-64-26"},
		{"blue", "10.1.0.65/26", "blue.10-1-0-64-26"}, // masked first
		{"red", "fd00:1::40/122", "red.fd00-1--40-122"},
	} {
		t.Run(tc.block, func(t *testing.T) {
			require.Equal(t, tc.want, v1alpha1.BlockName(tc.vpn, netip.MustParsePrefix(tc.block)))
			b := v1alpha1.NewVPNBlock(tc.vpn, netip.MustParsePrefix(tc.block), "node-a")
			require.Equal(t, tc.want, b.Name)
			require.Equal(t, netip.MustParsePrefix(tc.block).Masked().String(), b.Spec.CIDR)
			require.Equal(t, map[string]string{v1alpha1.LabelVPN: tc.vpn, v1alpha1.LabelNode: "node-a"}, b.Labels)
		})
	}
}
