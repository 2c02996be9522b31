package gateway

import (
	"net/netip"
	"runtime"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	"github.com/google/nftables"
	"github.com/stretchr/testify/require"

	"github.com/sdncni/sdncni/internal/testenv"
)

// TestNetfilterIdempotent: in a fresh netns, EnsureNetfilter twice leaves one table with
// its eight chains and 18 rules (no shared Services, one service CIDR); DeleteNetfilter removes it, twice without error.
func TestNetfilterIdempotent(t *testing.T) {
	testenv.RequireRoot(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	n, err := testutils.NewNS()
	require.NoError(t, err)
	t.Cleanup(func() { _ = n.Close(); _ = testutils.UnmountNS(n) })
	require.NoError(t, n.Do(func(ns.NetNS) error {
		for range 2 {
			if err := EnsureNetfilter(Filter{ServiceCIDRs: []netip.Prefix{netip.MustParsePrefix("10.96.0.0/12")}}); err != nil {
				return err
			}
		}
		c, err := nftables.New()
		require.NoError(t, err)
		chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
		require.NoError(t, err)
		rules := 0
		var names []string
		for _, ch := range chains {
			if ch.Table.Name != TableName {
				continue
			}
			names = append(names, ch.Name)
			rs, err := c.GetRules(ch.Table, ch)
			require.NoError(t, err)
			rules += len(rs)
		}
		require.ElementsMatch(t, []string{"mark", "mark-out", "dnat", "dnat-out", "input", "output", "forward", "postrouting"}, names)
		require.Equal(t, 18, rules)
		require.NoError(t, DeleteNetfilter())
		require.NoError(t, DeleteNetfilter())
		tables, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
		require.NoError(t, err)
		for _, tb := range tables {
			require.NotEqual(t, TableName, tb.Name)
		}
		return nil
	}))
}
