package ovs_test

import (
	"net/netip"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sdncni/sdncni/pkg/ovs"
)

// TestUpdateEndpointRoutes: only the addresses passed change, on that network only; a
// route written twice by hand (a crash mid-write) is left once; other routes keep their
// rows (same UUIDs). ServiceLoadBalancers finds one Service's rows only.
func TestUpdateEndpointRoutes(t *testing.T) {
	o, n := newNorthbound(t)
	ctx := testCtx(t)
	const a, b = "ovst-uepr-a", "ovst-uepr-b"
	ensureNetwork(t, n, a)
	ensureNetwork(t, n, b)
	ip := netip.MustParseAddr
	routes := func(network string) []string {
		out := find(t, o.Nbctl, "ip_prefix", "Logical_Router_Static_Route",
			`external_ids:"sdncni.io/role"=`+ovs.RoleServiceEndpoint, `external_ids:"sdncni.io/network"=`+network)
		sort.Strings(out)
		return out
	}
	require.NoError(t, n.SetEndpointRoutes(ctx, map[string][]netip.Addr{a: {ip("10.98.0.5"), ip("10.98.0.6")}, b: {ip("10.98.0.5")}}))
	kept := find(t, o.Nbctl, "_uuid", "Logical_Router_Static_Route", "ip_prefix=10.98.0.6/32")
	require.NoError(t, n.UpdateEndpointRoutes(ctx, a, map[netip.Addr]bool{ip("10.98.0.5"): false, ip("10.98.0.7"): true}))
	require.Equal(t, []string{"10.98.0.6/32", "10.98.0.7/32"}, routes(a))
	require.Equal(t, []string{"10.98.0.5/32"}, routes(b), "another network's route of the same address stays")
	require.Equal(t, kept, find(t, o.Nbctl, "_uuid", "Logical_Router_Static_Route", "ip_prefix=10.98.0.6/32"), "untouched")

	o.Nbctl(t, "--", "--id=@r", "create", "Logical_Router_Static_Route", "ip_prefix=10.98.0.7/32", "nexthop=10.98.0.7",
		`external_ids:"sdncni.io/owner"=sdncni`, `external_ids:"sdncni.io/network"=`+a,
		`external_ids:"sdncni.io/role"=`+ovs.RoleServiceEndpoint, "--", "add", "Logical_Router", ovs.RouterName(a), "static_routes", "@r")
	require.Len(t, routes(a), 3)
	require.NoError(t, n.UpdateEndpointRoutes(ctx, a, map[netip.Addr]bool{ip("10.98.0.7"): true}))
	require.Equal(t, []string{"10.98.0.6/32", "10.98.0.7/32"}, routes(a), "the duplicate goes")
	require.NoError(t, n.UpdateEndpointRoutes(ctx, "ovst-uepr-none", map[netip.Addr]bool{ip("10.98.0.7"): true}), "no router: nothing to do")
	require.NoError(t, n.SetEndpointRoutes(ctx, nil))

	for _, svc := range []string{"ns/x", "ns/y"} {
		require.NoError(t, n.EnsureLoadBalancer(ctx, ovs.LoadBalancer{Name: "ovst-uepr-" + svc[3:], Network: a, Service: svc,
			Protocol: "tcp", VIPs: map[string]string{"10.0.0.1:80": ""}}))
	}
	got, err := n.ServiceLoadBalancers(ctx, "ns/x")
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, "ovst-uepr-x", got[0].Name)
	got, err = n.ServiceLoadBalancers(ctx, "ns/none")
	require.NoError(t, err)
	require.Empty(t, got)
	for _, name := range []string{"ovst-uepr-x", "ovst-uepr-y"} {
		require.NoError(t, n.DeleteLoadBalancer(ctx, name))
	}
}
