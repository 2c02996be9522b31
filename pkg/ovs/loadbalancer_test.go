package ovs_test

import (
	"context"
	"net/netip"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sdncni/sdncni/pkg/ovs"
)

// TestLoadBalancer: a Service's load balancer is created on its network's switch and
// router only, its VIPs follow updates, it moves with the Service to another network,
// it is listed as owned, and delete removes it everywhere (twice is fine).
func TestLoadBalancer(t *testing.T) {
	o, n := newNorthbound(t)
	ctx := testCtx(t)
	const a, b = "ovst-lb-a", "ovst-lb-b"
	ensureNetwork(t, n, a)
	ensureNetwork(t, n, b)
	name := ovs.LoadBalancerName("ns", "web", "TCP")
	require.Equal(t, "sdncni-svc_ns_web_tcp", name)
	lb := ovs.LoadBalancer{Name: name, Network: a, Service: "ns/web", Protocol: "tcp",
		VIPs: map[string]string{"10.0.0.10:80": "10.99.0.5:8080,10.99.0.6:8080"}}
	require.NoError(t, n.EnsureLoadBalancer(ctx, lb))
	require.NoError(t, n.EnsureLoadBalancer(ctx, lb), "again: nothing changes")
	uuids := find(t, o.Nbctl, "_uuid", "Load_Balancer", "name="+name)
	require.Len(t, uuids, 1)
	uuid := uuids[0]
	// ls-lb-list/lr-lb-list show the LB's UUID (names are cut to 16 characters).
	lbs := func(cmd, of string) string { return o.Nbctl(t, cmd, of) }
	list := o.Nbctl(t, "lb-list")
	require.Contains(t, list, "10.99.0.5:8080,10.99.0.6:8080")
	require.Contains(t, lbs("ls-lb-list", ovs.SwitchName(a)), uuid)
	require.Contains(t, lbs("lr-lb-list", ovs.RouterName(a)), uuid)
	require.NotContains(t, lbs("ls-lb-list", ovs.SwitchName(b)), uuid)
	require.Equal(t, []string{"ct_flush=true"}, find(t, o.Nbctl, "options", "Load_Balancer", "name="+name),
		"conntrack of a backend that leaves must be flushed")

	lb.VIPs = map[string]string{"10.0.0.10:80": "10.99.0.6:8080"}
	require.NoError(t, n.EnsureLoadBalancer(ctx, lb))
	list = o.Nbctl(t, "lb-list")
	require.NotContains(t, list, "10.99.0.5:8080")
	require.Contains(t, list, "10.99.0.6:8080")

	lb.Network = b
	require.NoError(t, n.EnsureLoadBalancer(ctx, lb))
	require.NotContains(t, lbs("ls-lb-list", ovs.SwitchName(a)), uuid, "moved away")
	require.NotContains(t, lbs("lr-lb-list", ovs.RouterName(a)), uuid, "moved away")
	require.Contains(t, lbs("ls-lb-list", ovs.SwitchName(b)), uuid)
	require.Contains(t, lbs("lr-lb-list", ovs.RouterName(b)), uuid)

	owned, err := n.ListOwnedLoadBalancers(ctx)
	require.NoError(t, err)
	require.Len(t, owned, 1)
	require.Equal(t, lb, owned[0])

	require.NoError(t, n.DeleteLoadBalancer(ctx, name))
	require.NoError(t, n.DeleteLoadBalancer(ctx, name), "absent: not an error")
	require.Empty(t, find(t, o.Nbctl, "_uuid", "Load_Balancer", "name="+name))
	require.NotContains(t, lbs("ls-lb-list", ovs.SwitchName(b)), uuid)
	owned, err = n.ListOwnedLoadBalancers(ctx)
	require.NoError(t, err)
	require.Empty(t, owned)

	err = n.EnsureLoadBalancer(ctx, ovs.LoadBalancer{Name: "x", Network: "ovst-lb-none", Protocol: "tcp"})
	require.ErrorIs(t, err, ovs.ErrNotFound)
}

// TestLoadBalancerNamesDoNotCollide: Services whose namespace/name join to the same
// string with "-" (a-b/c and a/b-c, in different tenants' VPNs) get a load balancer each,
// on their own network, and updating one leaves the other alone.
func TestLoadBalancerNamesDoNotCollide(t *testing.T) {
	_, n := newNorthbound(t)
	ctx := testCtx(t)
	const x, y = "ovst-lbc-x", "ovst-lbc-y"
	ensureNetwork(t, n, x)
	ensureNetwork(t, n, y)
	one := ovs.LoadBalancer{Name: ovs.LoadBalancerName("a-b", "c", "tcp"), Network: x, Service: "a-b/c",
		Protocol: "tcp", VIPs: map[string]string{"10.0.0.20:80": "10.98.0.5:80"}}
	two := ovs.LoadBalancer{Name: ovs.LoadBalancerName("a", "b-c", "tcp"), Network: y, Service: "a/b-c",
		Protocol: "tcp", VIPs: map[string]string{"10.0.0.21:80": "10.98.0.5:80"}}
	require.NotEqual(t, one.Name, two.Name)
	require.NoError(t, n.EnsureLoadBalancer(ctx, one))
	require.NoError(t, n.EnsureLoadBalancer(ctx, two))
	t.Cleanup(func() {
		_ = n.DeleteLoadBalancer(context.Background(), one.Name)
		_ = n.DeleteLoadBalancer(context.Background(), two.Name)
	})
	owned, err := n.ListOwnedLoadBalancers(ctx)
	require.NoError(t, err)
	sort.Slice(owned, func(i, j int) bool { return owned[i].Service < owned[j].Service })
	require.Equal(t, []ovs.LoadBalancer{one, two}, owned, "each Service keeps its own row, VPN and VIPs")
}

// TestSetEndpointRoutes: each network's router gets exactly the /32 dst-ip routes asked
// for (next to other routes, which stay), and an empty map removes them.
func TestSetEndpointRoutes(t *testing.T) {
	o, n := newNorthbound(t)
	ctx := testCtx(t)
	const a, b = "ovst-epr-a", "ovst-epr-b"
	ensureNetwork(t, n, a)
	ensureNetwork(t, n, b)
	ip := netip.MustParseAddr
	routes := func(network string) []string {
		out := find(t, o.Nbctl, "ip_prefix", "Logical_Router_Static_Route",
			`external_ids:"sdncni.io/role"=`+ovs.RoleServiceEndpoint, `external_ids:"sdncni.io/network"=`+network)
		sort.Strings(out)
		return out
	}
	require.NoError(t, n.SetSourceRoutes(ctx, a, ovs.Owner{Node: "n1", Role: "management-port"},
		[]ovs.SourceRoute{{Source: netip.MustParsePrefix("10.99.0.0/28"), Nexthop: ip("10.99.0.2")}}))
	require.NoError(t, n.SetEndpointRoutes(ctx, map[string][]netip.Addr{a: {ip("10.99.0.5"), ip("10.99.0.6")}, b: {ip("10.99.0.5")}}))
	require.Equal(t, []string{"10.99.0.5/32", "10.99.0.6/32"}, routes(a))
	require.Equal(t, []string{"10.99.0.5/32"}, routes(b))
	require.Contains(t, o.Nbctl(t, "lr-route-list", ovs.RouterName(a)), "src-ip", "other routes stay")

	require.NoError(t, n.SetEndpointRoutes(ctx, map[string][]netip.Addr{a: {ip("10.99.0.6")}}))
	require.Equal(t, []string{"10.99.0.6/32"}, routes(a))
	require.Empty(t, routes(b))
	require.NoError(t, n.SetEndpointRoutes(ctx, nil))
	require.Empty(t, routes(a))
	require.Contains(t, o.Nbctl(t, "lr-route-list", ovs.RouterName(a)), "src-ip")
	require.NoError(t, n.SetSourceRoutes(ctx, a, ovs.Owner{Node: "n1", Role: "management-port"}, nil))
}
