package ovs

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	"github.com/ovn-kubernetes/libovsdb/ovsdb"

	"github.com/sdncni/sdncni/pkg/ovs/model/nb"
)

// RoleServiceEndpoint marks the /32 routes SetEndpointRoutes owns.
const RoleServiceEndpoint = "service-endpoint"

// SetEndpointRoutes makes the service-endpoint routes of every network's router exactly
// endpoints (network → addresses), in one transaction: a dst-ip route ip/32 via ip for each.
//
// Why: a pod's packet to a ClusterIP is addressed to its router's MAC; the switch's load
// balancer DNATs it to a backend and the router then routes it. Node blocks' src-ip routes
// (SetSourceRoutes, egress through the node) are longer prefixes than the VPN's connected
// route and would win, sending the packet to the node; a /32 dst-ip route is longer still
// and delivers it to the backend on the switch. A network missing from endpoints loses all
// its endpoint routes; a missing router is skipped.
func (n *Northbound) SetEndpointRoutes(ctx context.Context, endpoints map[string][]netip.Addr) error {
	if err := n.setEndpointRoutes(ctx, endpoints); err != nil {
		return fmt.Errorf("set service endpoint routes: %w", err)
	}
	return nil
}

func (n *Northbound) setEndpointRoutes(ctx context.Context, endpoints map[string][]netip.Addr) error {
	var routers []nb.LogicalRouter
	if err := n.c.WhereCache(func(lr *nb.LogicalRouter) bool { return owned(lr.ExternalIDs) }).List(ctx, &routers); err != nil {
		return fmt.Errorf("list routers: %w", err)
	}
	var ops []ovsdb.Operation
	changed := 0
	for _, lr := range routers {
		network := lr.ExternalIDs[KeyNetwork]
		if lr.Name != RouterName(network) {
			continue
		}
		ids := map[string]string{KeyOwner: OwnerValue, KeyNetwork: network, KeyRole: RoleServiceEndpoint}
		var have []nb.LogicalRouterStaticRoute
		if err := n.c.WhereCache(func(r *nb.LogicalRouterStaticRoute) bool {
			return slices.Contains(lr.StaticRoutes, r.UUID) && r.ExternalIDs[KeyRole] == RoleServiceEndpoint && owned(r.ExternalIDs)
		}).List(ctx, &have); err != nil {
			return fmt.Errorf("list routes: %w", err)
		}
		want := map[string]bool{}
		for _, ip := range endpoints[network] {
			want[netip.PrefixFrom(ip, ip.BitLen()).String()] = true
		}
		var added, removed []string
		for _, r := range have {
			if want[r.IPPrefix] && r.Policy == nil {
				delete(want, r.IPPrefix)
				continue
			}
			removed = append(removed, r.UUID)
		}
		for prefix := range want {
			row := &nb.LogicalRouterStaticRoute{UUID: fmt.Sprintf("new_ep_route_%d", changed), IPPrefix: prefix,
				Nexthop: netip.MustParsePrefix(prefix).Addr().String(), ExternalIDs: ids}
			changed++
			o, err := n.c.Create(row)
			if err != nil {
				return fmt.Errorf("create ops: %w", err)
			}
			ops = append(ops, o...)
			added = append(added, row.UUID)
		}
		if len(added) == 0 && len(removed) == 0 {
			continue
		}
		o, err := n.staticRoutesMutation(lr.UUID, added, removed)
		if err != nil {
			return err
		}
		ops = append(ops, o...)
		changed++
	}
	if len(ops) == 0 {
		return nil
	}
	if _, err := transact(ctx, n.c, ops); err != nil {
		return err
	}
	return waitUntil(ctx, "service endpoint routes in cache", func(ctx context.Context) bool {
		var rows []nb.LogicalRouterStaticRoute
		err := n.c.WhereCache(func(r *nb.LogicalRouterStaticRoute) bool {
			return r.ExternalIDs[KeyRole] == RoleServiceEndpoint && owned(r.ExternalIDs)
		}).List(ctx, &rows)
		if err != nil {
			return false
		}
		for network, ips := range endpoints {
			for _, ip := range ips {
				p := netip.PrefixFrom(ip, ip.BitLen()).String()
				if n.router(ctx, network) != nil && !slices.ContainsFunc(rows, func(r nb.LogicalRouterStaticRoute) bool {
					return r.IPPrefix == p && r.ExternalIDs[KeyNetwork] == network
				}) {
					return false
				}
			}
		}
		return true
	})
}

// UpdateEndpointRoutes makes the service-endpoint routes of network's router agree with
// want for the addresses in want only (true: the address needs its /32 route, false: it
// must have none), in one transaction, and leaves every other route alone. Each address
// is one index lookup, so the cost follows len(want), not the number of routes in NB:
// a Service event passes the addresses of that Service's backends (issue 12, item 7).
// A missing router is not an error (nothing to route yet).
func (n *Northbound) UpdateEndpointRoutes(ctx context.Context, network string, want map[netip.Addr]bool) error {
	if err := n.updateEndpointRoutes(ctx, network, want); err != nil {
		return fmt.Errorf("update service endpoint routes of %s: %w", network, err)
	}
	return nil
}

func (n *Northbound) updateEndpointRoutes(ctx context.Context, network string, want map[netip.Addr]bool) error {
	lr := n.router(ctx, network)
	if lr == nil || len(want) == 0 {
		return nil
	}
	ids := map[string]string{KeyOwner: OwnerValue, KeyNetwork: network, KeyRole: RoleServiceEndpoint}
	var ops []ovsdb.Operation
	var added, removed []string
	for ip, needed := range want {
		prefix := netip.PrefixFrom(ip, ip.BitLen()).String()
		have := n.endpointRoutes(ctx, network, prefix)
		switch {
		case needed && len(have) == 0:
			row := &nb.LogicalRouterStaticRoute{UUID: fmt.Sprintf("new_ep_route_%d", len(added)), IPPrefix: prefix,
				Nexthop: ip.String(), ExternalIDs: ids}
			o, err := n.c.Create(row)
			if err != nil {
				return fmt.Errorf("create ops: %w", err)
			}
			ops = append(ops, o...)
			added = append(added, row.UUID)
		case needed:
			have = have[1:] // keep one; duplicates (a crash mid-write) go
			fallthrough
		default:
			for _, r := range have {
				removed = append(removed, r.UUID)
			}
		}
	}
	mut, err := n.staticRoutesMutation(lr.UUID, added, removed)
	if err != nil {
		return err
	}
	if ops = append(ops, mut...); len(ops) == 0 {
		return nil
	}
	if _, err := transact(ctx, n.c, ops); err != nil {
		return err
	}
	return waitUntil(ctx, "service endpoint routes of "+network+" in cache", func(ctx context.Context) bool {
		for ip, needed := range want {
			if got := len(n.endpointRoutes(ctx, network, netip.PrefixFrom(ip, ip.BitLen()).String())); (got == 1) != needed || got > 1 {
				return false
			}
		}
		return true
	})
}

// endpointRoutes returns the owned service-endpoint routes of network for prefix, from
// the cache through the (network, ip_prefix) index. Routes are not root rows: one no
// router holds is gone from NB, so every row found is on network's router.
func (n *Northbound) endpointRoutes(ctx context.Context, network, prefix string) []nb.LogicalRouterStaticRoute {
	var rows []nb.LogicalRouterStaticRoute
	key := &nb.LogicalRouterStaticRoute{IPPrefix: prefix, ExternalIDs: map[string]string{KeyNetwork: network}}
	if err := n.c.Where(key).List(ctx, &rows); err != nil {
		return nil
	}
	return slices.DeleteFunc(rows, func(r nb.LogicalRouterStaticRoute) bool {
		return r.IPPrefix != prefix || r.Policy != nil || r.ExternalIDs[KeyRole] != RoleServiceEndpoint ||
			r.ExternalIDs[KeyNetwork] != network || !owned(r.ExternalIDs)
	})
}
