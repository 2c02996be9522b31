package ovs_test

import (
	"errors"
	"net/netip"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sdncni/sdncni/pkg/ovs"
)

// TestSetSourceRoutes: a node's src-ip routes on a network's router follow what it asks
// for (added, replaced, removed), leave another node's alone, and a missing router is
// ErrNotFound only when routes are wanted.
func TestSetSourceRoutes(t *testing.T) {
	o, n := newNorthbound(t)
	ctx := testCtx(t)
	const name = "ovst-routes"
	ensureNetwork(t, n, name)
	route := func(src, via string) ovs.SourceRoute {
		return ovs.SourceRoute{Source: netip.MustParsePrefix(src), Nexthop: netip.MustParseAddr(via)}
	}
	a := ovs.Owner{Node: "node-a", Role: "management-port"}
	b := ovs.Owner{Node: "node-b", Role: "management-port"}
	routes := func() []string {
		out := find(t, o.Nbctl, "ip_prefix", "Logical_Router_Static_Route", "policy=src-ip")
		sort.Strings(out)
		return out
	}
	require.NoError(t, n.SetSourceRoutes(ctx, name, a, []ovs.SourceRoute{route("10.99.0.0/28", "10.99.0.2"), route("10.99.0.32/28", "10.99.0.2")}))
	require.NoError(t, n.SetSourceRoutes(ctx, name, b, []ovs.SourceRoute{route("10.99.0.16/28", "10.99.0.17")}))
	require.Equal(t, []string{"10.99.0.0/28", "10.99.0.16/28", "10.99.0.32/28"}, routes())
	lr := o.Nbctl(t, "lr-route-list", ovs.RouterName(name))
	require.Contains(t, lr, "10.99.0.2")
	require.Contains(t, lr, "src-ip")

	// Again: nothing changes; then a's set shrinks.
	require.NoError(t, n.SetSourceRoutes(ctx, name, a, []ovs.SourceRoute{route("10.99.0.0/28", "10.99.0.2"), route("10.99.0.32/28", "10.99.0.2")}))
	require.Len(t, routes(), 3)
	require.NoError(t, n.SetSourceRoutes(ctx, name, a, []ovs.SourceRoute{route("10.99.0.0/28", "10.99.0.2")}))
	require.Equal(t, []string{"10.99.0.0/28", "10.99.0.16/28"}, routes())
	require.NoError(t, n.SetSourceRoutes(ctx, name, a, nil))
	require.Equal(t, []string{"10.99.0.16/28"}, routes(), "b's route stays")
	require.NoError(t, n.SetSourceRoutes(ctx, name, b, nil))
	require.Empty(t, routes())

	require.NoError(t, n.SetSourceRoutes(ctx, "ovst-none", a, nil), "nothing to remove")
	err := n.SetSourceRoutes(ctx, "ovst-none", a, []ovs.SourceRoute{route("10.99.0.0/28", "10.99.0.2")})
	require.True(t, errors.Is(err, ovs.ErrNotFound), "%v", err)
}
