package v1alpha1_test

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
)

func TestCheckBlock(t *testing.T) {
	v := &v1alpha1.VirtualPrivateNetwork{ObjectMeta: metav1.ObjectMeta{Name: "blue"},
		Spec: v1alpha1.VirtualPrivateNetworkSpec{CIDR: "10.77.0.0/24"}} // default /26 blocks
	for _, tc := range []struct {
		name  string
		block *v1alpha1.VPNBlock
		ok    bool
	}{
		{"inside", v1alpha1.NewVPNBlock("blue", netip.MustParsePrefix("10.77.0.192/26"), "n1"), true},
		{"outside", v1alpha1.NewVPNBlock("blue", netip.MustParsePrefix("10.78.0.0/26"), "n1"), false},
		{"covers the vpn", v1alpha1.NewVPNBlock("blue", netip.MustParsePrefix("10.0.0.0/8"), "n1"), false},
		{"smaller than a node block", v1alpha1.NewVPNBlock("blue", netip.MustParsePrefix("10.77.0.0/27"), "n1"), false},
		{"larger than a node block", v1alpha1.NewVPNBlock("blue", netip.MustParsePrefix("10.77.0.0/25"), "n1"), false},
		{"another vpn's", v1alpha1.NewVPNBlock("red", netip.MustParsePrefix("10.77.0.0/26"), "n1"), false},
		{"ipv6", v1alpha1.NewVPNBlock("blue", netip.MustParsePrefix("fd00::/26"), "n1"), false},
		{"node label not spec.node", func() *v1alpha1.VPNBlock {
			b := v1alpha1.NewVPNBlock("blue", netip.MustParsePrefix("10.77.0.0/26"), "n1")
			b.Labels[v1alpha1.LabelNode] = "n2"
			return b
		}(), false},
		{"not canonical", func() *v1alpha1.VPNBlock {
			b := v1alpha1.NewVPNBlock("blue", netip.MustParsePrefix("10.77.0.0/26"), "n1")
			b.Spec.CIDR = "10.77.0.1/26"
			return b
		}(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := v1alpha1.CheckBlock(v, tc.block)
			if tc.ok {
				require.NoError(t, err)
				require.Equal(t, tc.block.Spec.CIDR, p.String())
				return
			}
			require.ErrorIs(t, err, v1alpha1.ErrInvalidBlock)
		})
	}
}
