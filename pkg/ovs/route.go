package ovs

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"github.com/ovn-kubernetes/libovsdb/model"
	"github.com/ovn-kubernetes/libovsdb/ovsdb"

	"github.com/sdncni/sdncni/pkg/ovs/model/nb"
)

// SourceRoute sends what a network's router must route (destinations outside the
// network) from Source to Nexthop: a static route with policy src-ip.
type SourceRoute struct {
	Source  netip.Prefix
	Nexthop netip.Addr
}

// SetSourceRoutes makes the src-ip routes that owner (its Network and Node) holds on
// network's router exactly routes, in one transaction: missing ones are added, stale
// ones removed. An empty routes removes them all. A missing router gives ErrNotFound
// unless routes is empty.
func (n *Northbound) SetSourceRoutes(ctx context.Context, network string, owner Owner, routes []SourceRoute) error {
	owner.Network = network
	if err := n.setSourceRoutes(ctx, network, owner, routes); err != nil {
		return fmt.Errorf("set source routes of %s on %s: %w", owner.Node, network, err)
	}
	return nil
}

func (n *Northbound) setSourceRoutes(ctx context.Context, network string, owner Owner, routes []SourceRoute) error {
	if owner.Node == "" || owner.Role == "" {
		return errors.New("owner needs a node and a role")
	}
	lr := n.router(ctx, network)
	if lr == nil {
		if len(routes) == 0 {
			return nil
		}
		return fmt.Errorf("router of %s: %w", network, ErrNotFound)
	}
	ids := owner.ExternalIDs()
	var have []nb.LogicalRouterStaticRoute
	err := n.c.WhereCache(func(r *nb.LogicalRouterStaticRoute) bool {
		return slices.Contains(lr.StaticRoutes, r.UUID) && maps.Equal(r.ExternalIDs, ids)
	}).List(ctx, &have)
	if err != nil {
		return fmt.Errorf("list routes: %w", err)
	}
	key := func(prefix, nexthop string) string { return prefix + " via " + nexthop }
	want := map[string]SourceRoute{}
	for _, r := range routes {
		want[key(r.Source.Masked().String(), r.Nexthop.String())] = r
	}
	var ops []ovsdb.Operation
	var added, removed []string
	for _, r := range have {
		k := key(r.IPPrefix, r.Nexthop)
		if _, ok := want[k]; ok && r.Policy != nil && *r.Policy == nb.LogicalRouterStaticRoutePolicySrcIP {
			delete(want, k)
			continue
		}
		removed = append(removed, r.UUID)
	}
	i := 0
	for _, r := range want {
		policy := nb.LogicalRouterStaticRoutePolicySrcIP
		row := &nb.LogicalRouterStaticRoute{UUID: fmt.Sprintf("new_route_%d", i), IPPrefix: r.Source.Masked().String(),
			Nexthop: r.Nexthop.String(), Policy: &policy, ExternalIDs: ids}
		i++
		o, err := n.c.Create(row)
		if err != nil {
			return fmt.Errorf("create ops: %w", err)
		}
		ops = append(ops, o...)
		added = append(added, row.UUID)
	}
	if len(added) == 0 && len(removed) == 0 {
		return nil
	}
	mut, err := n.staticRoutesMutation(lr.UUID, added, removed)
	if err != nil {
		return err
	}
	ops = append(ops, mut...)
	if _, err := transact(ctx, n.c, ops); err != nil {
		return err
	}
	// Static routes are not a root table: the removed rows go with their reference.
	return waitUntil(ctx, "routes of "+network+" in cache", func(ctx context.Context) bool {
		lr := n.router(ctx, network)
		if lr == nil {
			return false
		}
		for _, u := range removed {
			if slices.Contains(lr.StaticRoutes, u) {
				return false
			}
		}
		return len(lr.StaticRoutes) >= len(added)
	})
}

// staticRoutesMutation returns the operation that inserts added and deletes removed
// static routes (row UUIDs) on the router with UUID lrUUID, or nothing when both are empty.
func (n *Northbound) staticRoutesMutation(lrUUID string, added, removed []string) ([]ovsdb.Operation, error) {
	if len(added) == 0 && len(removed) == 0 {
		return nil, nil
	}
	router := &nb.LogicalRouter{UUID: lrUUID}
	var muts []model.Mutation
	if len(added) > 0 {
		muts = append(muts, model.Mutation{Field: &router.StaticRoutes, Mutator: ovsdb.MutateOperationInsert, Value: added})
	}
	if len(removed) > 0 {
		muts = append(muts, model.Mutation{Field: &router.StaticRoutes, Mutator: ovsdb.MutateOperationDelete, Value: removed})
	}
	ops, err := n.c.Where(router).Mutate(router, muts...)
	if err != nil {
		return nil, fmt.Errorf("mutate ops: %w", err)
	}
	return ops, nil
}
