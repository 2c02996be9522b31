package ovs

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/ovn-kubernetes/libovsdb/model"
	"github.com/ovn-kubernetes/libovsdb/ovsdb"

	"github.com/sdncni/sdncni/pkg/ovs/model/nb"
)

// KeyService holds "namespace/name" of the Kubernetes Service a load balancer realises.
const KeyService = "sdncni.io/service"

// LoadBalancer is one OVN load balancer of a Service and protocol, attached to one
// network's switch and router.
type LoadBalancer struct {
	Name    string
	Network string
	// Service is "namespace/name".
	Service string
	// Protocol is "tcp" or "udp".
	Protocol string
	// VIPs maps "ip:port" to "backend:port,backend:port" (empty: no backend).
	VIPs map[string]string
}

// LoadBalancerName is the name of the load balancer of Service namespace/name and
// protocol. The separator is one that neither a namespace nor a Service name can hold
// (both are DNS labels): with "-", Service a-b/c and Service a/b-c shared one row and
// flapped between their VPNs. Rows named the old way are removed as stale by the Service
// reconciler (their sdncni.io/service id names the Service, their name no longer matches).
func LoadBalancerName(namespace, name, protocol string) string {
	return "sdncni-svc_" + namespace + "_" + name + "_" + strings.ToLower(protocol)
}

// EnsureLoadBalancer creates or updates lb and makes it a member of its network's switch
// and router and of no other switch or router, in one transaction. The network must exist.
func (n *Northbound) EnsureLoadBalancer(ctx context.Context, lb LoadBalancer) error {
	if err := n.ensureLoadBalancer(ctx, lb); err != nil {
		return fmt.Errorf("ensure load balancer %s: %w", lb.Name, err)
	}
	return nil
}

func (n *Northbound) ensureLoadBalancer(ctx context.Context, lb LoadBalancer) error {
	if lb.Name == "" || lb.Network == "" || (lb.Protocol != "tcp" && lb.Protocol != "udp") {
		return fmt.Errorf("bad load balancer %+v", lb)
	}
	ls, lr := n.logicalSwitch(ctx, lb.Network), n.router(ctx, lb.Network)
	if ls == nil || lr == nil {
		return fmt.Errorf("network %s: %w", lb.Network, ErrNotFound)
	}
	ids := map[string]string{KeyOwner: OwnerValue, KeyNetwork: lb.Network, KeyService: lb.Service}
	vips := maps.Clone(lb.VIPs)
	if vips == nil {
		vips = map[string]string{}
	}
	proto := nb.LoadBalancerProtocol(lb.Protocol)
	// ct_flush: ovn-controller deletes the conntrack entries of a backend that leaves.
	// Without it a UDP client that keeps sending (DNS, the upstream Conntrack e2e specs)
	// stays pinned to a deleted pod for as long as it sends.
	opts := map[string]string{"ct_flush": "true"}
	var ops []ovsdb.Operation
	add := func(o []ovsdb.Operation, err error) error {
		if err != nil {
			return fmt.Errorf("ops: %w", err)
		}
		ops = append(ops, o...)
		return nil
	}
	cur := n.loadBalancer(ctx, lb.Name)
	uuid := "new_lb"
	if cur == nil {
		row := &nb.LoadBalancer{UUID: uuid, Name: lb.Name, Protocol: &proto, Vips: vips, ExternalIDs: ids, Options: opts}
		if err := add(n.c.Create(row)); err != nil {
			return err
		}
	} else {
		uuid = cur.UUID
		if !maps.Equal(cur.Vips, vips) || !maps.Equal(cur.ExternalIDs, ids) || !maps.Equal(cur.Options, opts) ||
			cur.Protocol == nil || *cur.Protocol != proto {
			want := &nb.LoadBalancer{UUID: uuid, Protocol: &proto, Vips: vips, ExternalIDs: ids, Options: opts}
			if err := add(n.c.Where(want).Update(want, &want.Vips, &want.ExternalIDs, &want.Protocol, &want.Options)); err != nil {
				return err
			}
		}
		// Detach from every other network's switch and router (the Service moved VPN).
		var others []nb.LogicalSwitch
		if err := n.c.WhereCache(func(s *nb.LogicalSwitch) bool {
			return s.UUID != ls.UUID && slices.Contains(s.LoadBalancer, uuid)
		}).List(ctx, &others); err != nil {
			return fmt.Errorf("list switches: %w", err)
		}
		for _, s := range others {
			row := &nb.LogicalSwitch{UUID: s.UUID}
			if err := add(n.c.Where(row).Mutate(row, model.Mutation{Field: &row.LoadBalancer,
				Mutator: ovsdb.MutateOperationDelete, Value: []string{uuid}})); err != nil {
				return err
			}
		}
		var otherRouters []nb.LogicalRouter
		if err := n.c.WhereCache(func(r *nb.LogicalRouter) bool {
			return r.UUID != lr.UUID && slices.Contains(r.LoadBalancer, uuid)
		}).List(ctx, &otherRouters); err != nil {
			return fmt.Errorf("list routers: %w", err)
		}
		for _, r := range otherRouters {
			row := &nb.LogicalRouter{UUID: r.UUID}
			if err := add(n.c.Where(row).Mutate(row, model.Mutation{Field: &row.LoadBalancer,
				Mutator: ovsdb.MutateOperationDelete, Value: []string{uuid}})); err != nil {
				return err
			}
		}
	}
	if cur == nil || !slices.Contains(ls.LoadBalancer, uuid) {
		row := &nb.LogicalSwitch{UUID: ls.UUID}
		if err := add(n.c.Where(row).Mutate(row, model.Mutation{Field: &row.LoadBalancer,
			Mutator: ovsdb.MutateOperationInsert, Value: []string{uuid}})); err != nil {
			return err
		}
	}
	if cur == nil || !slices.Contains(lr.LoadBalancer, uuid) {
		row := &nb.LogicalRouter{UUID: lr.UUID}
		if err := add(n.c.Where(row).Mutate(row, model.Mutation{Field: &row.LoadBalancer,
			Mutator: ovsdb.MutateOperationInsert, Value: []string{uuid}})); err != nil {
			return err
		}
	}
	if len(ops) == 0 {
		return nil
	}
	if _, err := transact(ctx, n.c, ops); err != nil {
		return err
	}
	return waitUntil(ctx, "load balancer "+lb.Name+" in cache", func(ctx context.Context) bool {
		cur := n.loadBalancer(ctx, lb.Name)
		if cur == nil || !maps.Equal(cur.Vips, vips) {
			return false
		}
		ls, lr := n.logicalSwitch(ctx, lb.Network), n.router(ctx, lb.Network)
		return ls != nil && lr != nil && slices.Contains(ls.LoadBalancer, cur.UUID) && slices.Contains(lr.LoadBalancer, cur.UUID)
	})
}

// DeleteLoadBalancer removes the owned load balancer name; switches and routers lose it
// with it (weak references). A missing one is not an error.
func (n *Northbound) DeleteLoadBalancer(ctx context.Context, name string) error {
	cur := n.loadBalancer(ctx, name)
	if cur == nil {
		return nil
	}
	ops, err := n.c.Where(&nb.LoadBalancer{UUID: cur.UUID}).Delete()
	if err != nil {
		return fmt.Errorf("delete load balancer %s: ops: %w", name, err)
	}
	if _, err := transact(ctx, n.c, ops); err != nil {
		return fmt.Errorf("delete load balancer %s: %w", name, err)
	}
	return waitUntil(ctx, "load balancer "+name+" gone from cache", func(ctx context.Context) bool {
		return n.loadBalancer(ctx, name) == nil
	})
}

// ListOwnedLoadBalancers returns every load balancer sdncni owns, from the cache.
func (n *Northbound) ListOwnedLoadBalancers(ctx context.Context) ([]LoadBalancer, error) {
	var rows []nb.LoadBalancer
	if err := n.c.WhereCache(func(lb *nb.LoadBalancer) bool { return owned(lb.ExternalIDs) }).List(ctx, &rows); err != nil {
		return nil, fmt.Errorf("list load balancers: %w", err)
	}
	return fromRows(rows), nil
}

// ServiceLoadBalancers returns the owned load balancers of Service ("namespace/name"),
// from the cache through an index: the cost is that Service's rows, not every tenant's.
func (n *Northbound) ServiceLoadBalancers(ctx context.Context, service string) ([]LoadBalancer, error) {
	var rows []nb.LoadBalancer
	if err := n.c.Where(&nb.LoadBalancer{ExternalIDs: map[string]string{KeyService: service}}).List(ctx, &rows); err != nil {
		return nil, fmt.Errorf("list load balancers of %s: %w", service, err)
	}
	rows = slices.DeleteFunc(rows, func(r nb.LoadBalancer) bool { return !owned(r.ExternalIDs) || r.ExternalIDs[KeyService] != service })
	return fromRows(rows), nil
}

func fromRows(rows []nb.LoadBalancer) []LoadBalancer {
	out := make([]LoadBalancer, 0, len(rows))
	for _, r := range rows {
		lb := LoadBalancer{Name: r.Name, Network: r.ExternalIDs[KeyNetwork], Service: r.ExternalIDs[KeyService],
			VIPs: maps.Clone(r.Vips)}
		if r.Protocol != nil {
			lb.Protocol = string(*r.Protocol)
		}
		out = append(out, lb)
	}
	slices.SortFunc(out, func(a, b LoadBalancer) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// loadBalancer returns the cached, owned load balancer name, or nil (an index lookup).
func (n *Northbound) loadBalancer(ctx context.Context, name string) *nb.LoadBalancer {
	var rows []nb.LoadBalancer
	if err := n.c.Where(&nb.LoadBalancer{Name: name}).List(ctx, &rows); err != nil {
		return nil
	}
	for i := range rows {
		if rows[i].Name == name && owned(rows[i].ExternalIDs) {
			return &rows[i]
		}
	}
	return nil
}
