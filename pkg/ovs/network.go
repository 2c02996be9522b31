package ovs

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/ovn-kubernetes/libovsdb/model"
	"github.com/ovn-kubernetes/libovsdb/ovsdb"

	"github.com/sdncni/sdncni/pkg/ovs/model/nb"
)

// KeySubnets records a network's subnets on its logical switch (informational: sdncni
// does its own IPAM, so OVN's other_config:subnet is not set).
const KeySubnets = "sdncni.io/subnets"

// Network is the OVN topology of one network (VPN): a logical switch for its pods and a
// logical router whose port on the switch is the pods' gateway.
type Network struct {
	Name    string
	Subnets []netip.Prefix
	// GatewayMAC is the router port's MAC.
	GatewayMAC net.HardwareAddr
	// Gateways are the router port's addresses with prefix length, e.g. 10.244.0.1/16.
	Gateways []netip.Prefix
	// ExternalIDs are added to every row of the network, next to the owner mark.
	ExternalIDs map[string]string
}

// EnsureNetwork creates whatever is missing of network n's switch, router, router port and
// the switch's router-type port (one transaction), and brings the router port's MAC and
// addresses up to date. Calling it again with the same Network changes nothing.
func (n *Northbound) EnsureNetwork(ctx context.Context, nw Network) error {
	if err := validateNetwork(nw); err != nil {
		return fmt.Errorf("ensure network %s: %w", nw.Name, err)
	}
	n.netMu.Lock()
	defer n.netMu.Unlock()
	for attempt := 0; ; attempt++ {
		err := n.ensureNetwork(ctx, nw)
		if err != nil && isConstraintViolation(err) && attempt < 2 {
			continue // another process created part of it first; look again
		}
		if err != nil {
			return fmt.Errorf("ensure network %s: %w", nw.Name, err)
		}
		return nil
	}
}

func validateNetwork(nw Network) error {
	switch {
	case nw.Name == "":
		return errors.New("empty name")
	case len(nw.GatewayMAC) != 6:
		return fmt.Errorf("bad gateway MAC %q", nw.GatewayMAC)
	case len(nw.Gateways) == 0:
		return errors.New("no gateway address")
	}
	for _, g := range nw.Gateways {
		if !g.IsValid() || g.Addr() == g.Masked().Addr() {
			return fmt.Errorf("gateway %s: want a host address with its prefix length", g)
		}
	}
	return nil
}

func (n *Northbound) ensureNetwork(ctx context.Context, nw Network) error {
	ids := n.networkIDs(nw)
	lsIDs := maps.Clone(ids)
	if len(nw.Subnets) > 0 {
		subnets := make([]string, len(nw.Subnets))
		for i, s := range nw.Subnets {
			subnets[i] = s.String()
		}
		lsIDs[KeySubnets] = strings.Join(subnets, ",")
	}
	mac := nw.GatewayMAC.String()
	networks := make([]string, len(nw.Gateways))
	for i, g := range nw.Gateways {
		networks[i] = g.String()
	}

	var ops []ovsdb.Operation
	add := func(o []ovsdb.Operation, err error) error {
		if err != nil {
			return err
		}
		ops = append(ops, o...)
		return nil
	}

	// Router and its port.
	lr := n.router(ctx, nw.Name)
	lrp := &nb.LogicalRouterPort{Name: RouterPortName(nw.Name)}
	lrpErr := getByIndex(ctx, n.c, lrp)
	if lrpErr != nil && !errors.Is(lrpErr, ErrNotFound) {
		return fmt.Errorf("get router port: %w", lrpErr)
	}
	lrpMissing := lrpErr != nil
	if lrpMissing {
		lrp = &nb.LogicalRouterPort{UUID: "new_lrp", Name: RouterPortName(nw.Name), MAC: mac,
			Networks: networks, ExternalIDs: ids}
		if err := add(n.c.Create(lrp)); err != nil {
			return fmt.Errorf("create ops: %w", err)
		}
	} else if lrp.MAC != mac || !sameSet(lrp.Networks, networks) || !maps.Equal(lrp.ExternalIDs, ids) {
		want := &nb.LogicalRouterPort{UUID: lrp.UUID, MAC: mac, Networks: networks, ExternalIDs: ids}
		if err := add(n.c.Where(want).Update(want, &want.MAC, &want.Networks, &want.ExternalIDs)); err != nil {
			return fmt.Errorf("update ops: %w", err)
		}
	}
	switch {
	case lr == nil:
		lr = &nb.LogicalRouter{UUID: "new_lr", Name: RouterName(nw.Name), ExternalIDs: ids,
			Ports: []string{lrp.UUID}}
		if err := add(n.c.Create(lr)); err != nil {
			return fmt.Errorf("create ops: %w", err)
		}
	case lrpMissing || !slices.Contains(lr.Ports, lrp.UUID):
		if err := add(n.c.Where(lr).Mutate(lr, model.Mutation{
			Field: &lr.Ports, Mutator: ovsdb.MutateOperationInsert, Value: []string{lrp.UUID},
		})); err != nil {
			return fmt.Errorf("mutate ops: %w", err)
		}
	}

	// Switch and its router-type port.
	ls := n.logicalSwitch(ctx, nw.Name)
	lsp := &nb.LogicalSwitchPort{Name: SwitchRouterPortName(nw.Name)}
	lspErr := getByIndex(ctx, n.c, lsp)
	if lspErr != nil && !errors.Is(lspErr, ErrNotFound) {
		return fmt.Errorf("get switch router port: %w", lspErr)
	}
	lspMissing := lspErr != nil
	if lspMissing {
		lsp = &nb.LogicalSwitchPort{UUID: "new_lsp", Name: SwitchRouterPortName(nw.Name), Type: "router",
			Addresses: []string{"router"}, Options: map[string]string{"router-port": RouterPortName(nw.Name)},
			ExternalIDs: ids}
		if err := add(n.c.Create(lsp)); err != nil {
			return fmt.Errorf("create ops: %w", err)
		}
	}
	if ls == nil {
		ls = &nb.LogicalSwitch{UUID: "new_ls", Name: SwitchName(nw.Name), ExternalIDs: lsIDs,
			Ports: []string{lsp.UUID}}
		if err := add(n.c.Create(ls)); err != nil {
			return fmt.Errorf("create ops: %w", err)
		}
	} else {
		if lspMissing || !slices.Contains(ls.Ports, lsp.UUID) {
			if err := add(n.c.Where(ls).Mutate(ls, model.Mutation{
				Field: &ls.Ports, Mutator: ovsdb.MutateOperationInsert, Value: []string{lsp.UUID},
			})); err != nil {
				return fmt.Errorf("mutate ops: %w", err)
			}
		}
		if !maps.Equal(ls.ExternalIDs, lsIDs) {
			want := &nb.LogicalSwitch{UUID: ls.UUID, ExternalIDs: lsIDs}
			if err := add(n.c.Where(want).Update(want, &want.ExternalIDs)); err != nil {
				return fmt.Errorf("update ops: %w", err)
			}
		}
	}
	if len(ops) == 0 {
		return nil
	}
	if _, err := transact(ctx, n.c, ops); err != nil {
		return err
	}
	return waitUntil(ctx, "network "+nw.Name+" in cache", func(ctx context.Context) bool {
		ls, lr := n.logicalSwitch(ctx, nw.Name), n.router(ctx, nw.Name)
		p := &nb.LogicalRouterPort{Name: RouterPortName(nw.Name)}
		return ls != nil && lr != nil && getByIndex(ctx, n.c, p) == nil && p.MAC == mac &&
			maps.Equal(ls.ExternalIDs, lsIDs) && slices.Contains(lr.Ports, p.UUID)
	})
}

func (n *Northbound) networkIDs(nw Network) map[string]string {
	ids := maps.Clone(nw.ExternalIDs)
	if ids == nil {
		ids = map[string]string{}
	}
	ids[KeyOwner] = OwnerValue
	ids[KeyNetwork] = nw.Name
	return ids
}

// DeleteNetwork removes every NB row sdncni owns for network name: its switches with all
// their ports (pod ports included) and its routers with their ports. A missing network is
// not an error.
func (n *Northbound) DeleteNetwork(ctx context.Context, name string) error {
	n.netMu.Lock()
	defer n.netMu.Unlock()
	if err := n.deleteNetwork(ctx, name); err != nil {
		return fmt.Errorf("delete network %s: %w", name, err)
	}
	return nil
}

func (n *Northbound) deleteNetwork(ctx context.Context, name string) error {
	ours := func(ids map[string]string) bool { return owned(ids) && ids[KeyNetwork] == name }
	var (
		switches []nb.LogicalSwitch
		routers  []nb.LogicalRouter
		lsps     []nb.LogicalSwitchPort
		lrps     []nb.LogicalRouterPort
	)
	if err := n.c.WhereCache(func(ls *nb.LogicalSwitch) bool { return ours(ls.ExternalIDs) }).List(ctx, &switches); err != nil {
		return fmt.Errorf("list switches: %w", err)
	}
	if err := n.c.WhereCache(func(lr *nb.LogicalRouter) bool { return ours(lr.ExternalIDs) }).List(ctx, &routers); err != nil {
		return fmt.Errorf("list routers: %w", err)
	}
	if err := n.c.WhereCache(func(p *nb.LogicalSwitchPort) bool { return ours(p.ExternalIDs) }).List(ctx, &lsps); err != nil {
		return fmt.Errorf("list switch ports: %w", err)
	}
	if err := n.c.WhereCache(func(p *nb.LogicalRouterPort) bool { return ours(p.ExternalIDs) }).List(ctx, &lrps); err != nil {
		return fmt.Errorf("list router ports: %w", err)
	}
	var ops []ovsdb.Operation
	del := func(m model.Model) error {
		o, err := n.c.Where(m).Delete()
		if err != nil {
			return fmt.Errorf("delete ops: %w", err)
		}
		ops = append(ops, o...)
		return nil
	}
	// Ports are children of their switch/router (non-root tables): deleting the parent
	// removes them, including pod ports not marked with this network. Owned ports
	// referenced from elsewhere are detached and deleted explicitly.
	for i := range switches {
		if err := del(&nb.LogicalSwitch{UUID: switches[i].UUID}); err != nil {
			return err
		}
	}
	for i := range routers {
		if err := del(&nb.LogicalRouter{UUID: routers[i].UUID}); err != nil {
			return err
		}
	}
	for _, p := range lsps {
		ls := &nb.LogicalSwitch{}
		o, err := n.c.WhereAll(ls, model.Condition{
			Field: &ls.Ports, Function: ovsdb.ConditionIncludes, Value: []string{p.UUID},
		}).Mutate(ls, model.Mutation{Field: &ls.Ports, Mutator: ovsdb.MutateOperationDelete, Value: []string{p.UUID}})
		if err != nil {
			return fmt.Errorf("mutate ops: %w", err)
		}
		ops = append(ops, o...)
		if err := del(&nb.LogicalSwitchPort{UUID: p.UUID}); err != nil {
			return err
		}
	}
	for _, p := range lrps {
		lr := &nb.LogicalRouter{}
		o, err := n.c.WhereAll(lr, model.Condition{
			Field: &lr.Ports, Function: ovsdb.ConditionIncludes, Value: []string{p.UUID},
		}).Mutate(lr, model.Mutation{Field: &lr.Ports, Mutator: ovsdb.MutateOperationDelete, Value: []string{p.UUID}})
		if err != nil {
			return fmt.Errorf("mutate ops: %w", err)
		}
		ops = append(ops, o...)
		if err := del(&nb.LogicalRouterPort{UUID: p.UUID}); err != nil {
			return err
		}
	}
	if len(ops) == 0 {
		return nil
	}
	if _, err := transact(ctx, n.c, ops); err != nil {
		return err
	}
	return waitUntil(ctx, "network "+name+" gone from cache", func(ctx context.Context) bool {
		return n.logicalSwitch(ctx, name) == nil && n.router(ctx, name) == nil
	})
}

// logicalSwitch returns network's cached, owned switch, or nil. Logical_Switch has no
// unique name index, so the lookup goes by name and owner mark.
func (n *Northbound) logicalSwitch(ctx context.Context, network string) *nb.LogicalSwitch {
	var rows []nb.LogicalSwitch
	name := SwitchName(network)
	err := n.c.WhereCache(func(ls *nb.LogicalSwitch) bool {
		return ls.Name == name && owned(ls.ExternalIDs)
	}).List(ctx, &rows)
	if err != nil || len(rows) == 0 {
		return nil
	}
	return &rows[0]
}

// router returns network's cached, owned router, or nil.
func (n *Northbound) router(ctx context.Context, network string) *nb.LogicalRouter {
	var rows []nb.LogicalRouter
	name := RouterName(network)
	err := n.c.WhereCache(func(lr *nb.LogicalRouter) bool {
		return lr.Name == name && owned(lr.ExternalIDs)
	}).List(ctx, &rows)
	if err != nil || len(rows) == 0 {
		return nil
	}
	return &rows[0]
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
