package ovs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/ovn-kubernetes/libovsdb/model"
	"github.com/ovn-kubernetes/libovsdb/ovsdb"

	"github.com/sdncni/sdncni/pkg/ovs/model/nb"
)

// LogicalPort is a pod's port on its network's logical switch.
type LogicalPort struct {
	// Name is the LSP name; the OVS interface binds to it with external_ids:iface-id.
	Name  string
	MAC   net.HardwareAddr
	IPs   []netip.Addr
	Owner Owner
	// MACOnlyPortSecurity limits port_security to the MAC, so the port may send packets
	// with any source IP (a management port forwarding replies from outside).
	MACOnlyPortSecurity bool
}

// LogicalPortInfo is what GetLogicalPort and ListOwnedLogicalPorts report.
type LogicalPortInfo struct {
	Name string
	// Network is the network named in the port's owner mark.
	Network      string
	MAC          net.HardwareAddr
	IPs          []netip.Addr
	Addresses    []string
	PortSecurity []string
	Owner        Owner
	// Up is true once ovn-northd has seen the port bound on a chassis.
	Up bool
}

// AddLogicalPort creates lp on network's switch, with addresses and port_security both
// "MAC IP…", in one transaction with the switch's ports mutation. Owner.Network is set to
// network. Idempotent: an existing port with the same owner and addresses gives nil,
// anything else under that name ErrConflict. A missing network gives ErrNotFound.
func (n *Northbound) AddLogicalPort(ctx context.Context, network string, lp LogicalPort) error {
	if err := n.addLogicalPort(ctx, network, lp); err != nil {
		return fmt.Errorf("add logical port %s: %w", lp.Name, err)
	}
	return nil
}

func (n *Northbound) addLogicalPort(ctx context.Context, network string, lp LogicalPort) error {
	if lp.Name == "" {
		return errors.New("empty name")
	}
	if len(lp.MAC) != 6 {
		return fmt.Errorf("bad MAC %q", lp.MAC)
	}
	lp.Owner.Network = network
	addr := addressString(lp.MAC, lp.IPs)
	if done, err := n.logicalPortExists(ctx, lp, addr); done || err != nil {
		return err
	}
	ls := n.logicalSwitch(ctx, network)
	if ls == nil {
		return fmt.Errorf("network %s: %w", network, ErrNotFound)
	}
	portSecurity := addr
	if lp.MACOnlyPortSecurity {
		portSecurity = lp.MAC.String()
	}
	lsp := &nb.LogicalSwitchPort{
		UUID: "new_lsp", Name: lp.Name, Addresses: []string{addr}, PortSecurity: []string{portSecurity},
		ExternalIDs: lp.Owner.ExternalIDs(),
	}
	ops, err := n.c.Create(lsp)
	if err != nil {
		return fmt.Errorf("create ops: %w", err)
	}
	sw := &nb.LogicalSwitch{UUID: ls.UUID}
	mut, err := n.c.Where(sw).Mutate(sw, model.Mutation{
		Field: &sw.Ports, Mutator: ovsdb.MutateOperationInsert, Value: []string{lsp.UUID},
	})
	if err != nil {
		return fmt.Errorf("mutate ops: %w", err)
	}
	ops = append(ops, mut...)
	res, err := transact(ctx, n.c, ops)
	if err != nil {
		if isConstraintViolation(err) {
			if werr := waitUntil(ctx, "logical port "+lp.Name, func(ctx context.Context) bool { return n.hasLSP(ctx, lp.Name) }); werr != nil {
				return err
			}
			if done, err2 := n.logicalPortExists(ctx, lp, addr); done || err2 != nil {
				return err2
			}
		}
		return err
	}
	if res[len(ops)-1].Count != 1 {
		return fmt.Errorf("network %s: %w", network, ErrNotFound)
	}
	return waitUntil(ctx, "logical port "+lp.Name+" in cache", func(ctx context.Context) bool { return n.hasLSP(ctx, lp.Name) })
}

func (n *Northbound) logicalPortExists(ctx context.Context, lp LogicalPort, addr string) (bool, error) {
	lsp := &nb.LogicalSwitchPort{Name: lp.Name}
	err := getByIndex(ctx, n.c, lsp)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("get logical port: %w", err)
	}
	owner, ok := OwnerFromExternalIDs(lsp.ExternalIDs)
	switch {
	case !ok:
		return true, fmt.Errorf("exists, not owned by sdncni: %w", ErrConflict)
	case owner != lp.Owner:
		return true, fmt.Errorf("exists for %+v: %w", owner, ErrConflict)
	case !slices.Equal(lsp.Addresses, []string{addr}):
		return true, fmt.Errorf("exists with addresses %q: %w", lsp.Addresses, ErrConflict)
	}
	return true, nil
}

func (n *Northbound) hasLSP(ctx context.Context, name string) bool {
	return getByIndex(ctx, n.c, &nb.LogicalSwitchPort{Name: name}) == nil
}

// DeleteLogicalPort removes logical port name from whatever switch holds it; network is
// the expected one and used only in messages. A missing port is not an error; a port
// without sdncni's owner mark is left alone and ErrConflict returned.
func (n *Northbound) DeleteLogicalPort(ctx context.Context, network, name string) error {
	if err := n.deleteLogicalPort(ctx, name); err != nil {
		return fmt.Errorf("delete logical port %s of %s: %w", name, network, err)
	}
	return nil
}

func (n *Northbound) deleteLogicalPort(ctx context.Context, name string) error {
	lsp := &nb.LogicalSwitchPort{Name: name}
	err := getByIndex(ctx, n.c, lsp)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get logical port: %w", err)
	}
	if !owned(lsp.ExternalIDs) {
		return fmt.Errorf("not owned by sdncni: %w", ErrConflict)
	}
	ls := &nb.LogicalSwitch{}
	ops, err := n.c.WhereAll(ls, model.Condition{
		Field: &ls.Ports, Function: ovsdb.ConditionIncludes, Value: []string{lsp.UUID},
	}).Mutate(ls, model.Mutation{Field: &ls.Ports, Mutator: ovsdb.MutateOperationDelete, Value: []string{lsp.UUID}})
	if err != nil {
		return fmt.Errorf("mutate ops: %w", err)
	}
	del, err := n.c.Where(&nb.LogicalSwitchPort{UUID: lsp.UUID}).Delete()
	if err != nil {
		return fmt.Errorf("delete ops: %w", err)
	}
	if _, err := transact(ctx, n.c, append(ops, del...)); err != nil {
		return err
	}
	return waitUntil(ctx, "logical port "+name+" gone from cache", func(ctx context.Context) bool { return !n.hasLSP(ctx, name) })
}

// GetLogicalPort reports on logical switch port name; ErrNotFound if there is none.
func (n *Northbound) GetLogicalPort(ctx context.Context, name string) (LogicalPortInfo, error) {
	lsp := &nb.LogicalSwitchPort{Name: name}
	if err := getByIndex(ctx, n.c, lsp); err != nil {
		return LogicalPortInfo{}, fmt.Errorf("get logical port %s: %w", name, err)
	}
	return logicalPortInfo(lsp), nil
}

// ListOwnedLogicalPorts returns every pod port (type "") that carries sdncni's owner mark,
// in every network.
func (n *Northbound) ListOwnedLogicalPorts(ctx context.Context) ([]LogicalPortInfo, error) {
	var rows []nb.LogicalSwitchPort
	err := n.c.WhereCache(func(p *nb.LogicalSwitchPort) bool {
		return p.Type == "" && owned(p.ExternalIDs)
	}).List(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("list owned logical ports: %w", err)
	}
	out := make([]LogicalPortInfo, 0, len(rows))
	for i := range rows {
		out = append(out, logicalPortInfo(&rows[i]))
	}
	return out, nil
}

func addressString(mac net.HardwareAddr, ips []netip.Addr) string {
	parts := []string{mac.String()}
	for _, ip := range ips {
		parts = append(parts, ip.String())
	}
	return strings.Join(parts, " ")
}

func logicalPortInfo(p *nb.LogicalSwitchPort) LogicalPortInfo {
	owner, _ := OwnerFromExternalIDs(p.ExternalIDs)
	info := LogicalPortInfo{
		Name:         p.Name,
		Network:      owner.Network,
		Addresses:    slices.Clone(p.Addresses),
		PortSecurity: slices.Clone(p.PortSecurity),
		Owner:        owner,
		Up:           p.Up != nil && *p.Up,
	}
	if len(p.Addresses) > 0 {
		fields := strings.Fields(p.Addresses[0])
		if len(fields) > 0 {
			info.MAC, _ = net.ParseMAC(fields[0])
			for _, f := range fields[1:] {
				if ip, err := netip.ParseAddr(f); err == nil {
					info.IPs = append(info.IPs, ip)
				}
			}
		}
	}
	return info
}
