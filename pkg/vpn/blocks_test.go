package vpn

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNextFreeBlock(t *testing.T) {
	pp := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	for _, tc := range []struct {
		name string
		cidr string
		size int
		held []netip.Prefix
		from int
		want string // "" for none
	}{
		{name: "nothing held", cidr: "10.1.0.0/24", size: 28, want: "10.1.0.0/28"},
		{name: "own block skipped", cidr: "10.1.0.0/24", size: 28, held: pp("10.1.0.0/28"), want: "10.1.0.16/28"},
		{name: "other VPN's equal block", cidr: "10.1.0.0/24", size: 28, held: pp("10.1.0.0/28", "10.1.0.16/28"), want: "10.1.0.32/28"},
		{name: "other VPN's larger block", cidr: "10.1.0.0/24", size: 28, held: pp("10.1.0.0/26"), want: "10.1.0.64/28"},
		{name: "other VPN's smaller block inside", cidr: "10.1.0.0/24", size: 26, held: pp("10.1.0.16/28"), want: "10.1.0.64/26"},
		{name: "unrelated range", cidr: "10.1.0.0/24", size: 28, held: pp("10.2.0.0/16"), want: "10.1.0.0/28"},
		{name: "whole CIDR held elsewhere", cidr: "10.1.0.0/24", size: 28, held: pp("10.0.0.0/8")},
		{name: "from skips earlier", cidr: "10.1.0.0/24", size: 28, from: 3, want: "10.1.0.48/28"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			count, block, err := Blocks(netip.MustParsePrefix(tc.cidr), tc.size)
			require.NoError(t, err)
			i := NextFreeBlock(tc.from, count, block, tc.held)
			if tc.want == "" {
				require.Equal(t, -1, i)
				return
			}
			require.GreaterOrEqual(t, i, 0)
			got := block(i)
			require.Equal(t, tc.want, got.String())
			for _, h := range tc.held {
				require.False(t, h.Overlaps(got))
			}
		})
	}
}
