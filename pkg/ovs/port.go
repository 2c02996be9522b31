package ovs

import (
	"context"
	"errors"
	"fmt"

	"github.com/ovn-kubernetes/libovsdb/model"
	"github.com/ovn-kubernetes/libovsdb/ovsdb"

	"github.com/sdncni/sdncni/pkg/ovs/model/vswitch"
)

// Port describes a pod port on the integration bridge.
type Port struct {
	// Name of the Port and its Interface: the host-side veth, or the tap for "internal".
	Name string
	// Type is "" for an existing network device (a veth) or "internal" for an OVS-created
	// tap device.
	Type string
	// IfaceID is the OVN logical switch port this interface is bound to.
	IfaceID string
	Owner   Owner
	// MTU, when non-zero, is requested through mtu_request.
	MTU int
}

// PortInfo is what GetPort and ListOwnedPorts report about a port.
type PortInfo struct {
	Name    string
	Type    string
	IfaceID string
	Owner   Owner
	// OFPort is the OpenFlow port number: 0 while ovs-vswitchd has not yet attached the
	// interface, -1 if attaching failed (see Error).
	OFPort int
	// Error is the Interface's error column (empty when attached fine).
	Error string
	// OVNInstalled is true once ovn-controller has installed the port's flows.
	OVNInstalled bool
}

// AddPort creates an Interface, a Port and the bridge's reference to it in one
// transaction. It is idempotent: if a port of that name already exists with the same
// owner and iface-id it returns nil; if it belongs to someone else it returns an error
// wrapping ErrConflict. A missing bridge gives ErrNotFound.
func (v *VSwitch) AddPort(ctx context.Context, bridge string, p Port) error {
	if err := v.addPort(ctx, bridge, p); err != nil {
		return fmt.Errorf("add port %s: %w", p.Name, err)
	}
	return nil
}

func (v *VSwitch) addPort(ctx context.Context, bridge string, p Port) error {
	if p.Name == "" {
		return errors.New("empty name")
	}
	if p.Type != "" && p.Type != "internal" {
		return fmt.Errorf("unsupported type %q", p.Type)
	}
	if done, err := v.portExists(ctx, p); done || err != nil {
		return err
	}
	if v.bridge(ctx, bridge) == nil {
		return fmt.Errorf("bridge %s: %w", bridge, ErrNotFound)
	}
	ids := p.Owner.ExternalIDs()
	if p.IfaceID != "" {
		ids[KeyIfaceID] = p.IfaceID
	}
	iface := &vswitch.Interface{UUID: "new_iface", Name: p.Name, Type: p.Type, ExternalIDs: ids}
	if p.MTU > 0 {
		mtu := p.MTU
		iface.MTURequest = &mtu
	}
	port := &vswitch.Port{
		UUID: "new_port", Name: p.Name, Interfaces: []string{iface.UUID},
		ExternalIDs: p.Owner.ExternalIDs(),
	}
	ops, err := createOps(v.c, iface, port)
	if err != nil {
		return fmt.Errorf("create ops: %w", err)
	}
	br := &vswitch.Bridge{Name: bridge}
	mut, err := v.c.Where(br).Mutate(br, model.Mutation{
		Field: &br.Ports, Mutator: ovsdb.MutateOperationInsert, Value: []string{port.UUID},
	})
	if err != nil {
		return fmt.Errorf("mutate ops: %w", err)
	}
	ops = append(ops, mut...)
	res, err := transact(ctx, v.c, ops)
	if err != nil {
		if isConstraintViolation(err) {
			// A concurrent AddPort of the same name won: judge its row like any other.
			if werr := waitUntil(ctx, "port "+p.Name, func(ctx context.Context) bool { return v.hasInterface(ctx, p.Name) }); werr != nil {
				return err
			}
			if done, err2 := v.portExists(ctx, p); done || err2 != nil {
				return err2
			}
		}
		return err
	}
	if res[len(ops)-1].Count != 1 {
		// The bridge vanished under us; the unreferenced rows were garbage-collected.
		return fmt.Errorf("bridge %s: %w", bridge, ErrNotFound)
	}
	return waitUntil(ctx, "port "+p.Name+" in cache", func(ctx context.Context) bool { return v.hasInterface(ctx, p.Name) })
}

// portExists reports whether a port named p.Name exists; err wraps ErrConflict when it
// is not the same attachment.
func (v *VSwitch) portExists(ctx context.Context, p Port) (bool, error) {
	iface := &vswitch.Interface{Name: p.Name}
	err := getByIndex(ctx, v.c, iface)
	if errors.Is(err, ErrNotFound) {
		if getByIndex(ctx, v.c, &vswitch.Port{Name: p.Name}) != nil {
			return false, nil
		}
		// The cache applies an update table by table, so a new Port can show before its
		// Interface; only a Port that stays alone is someone else's odd row.
		if waitUntil(ctx, "interface "+p.Name, func(ctx context.Context) bool { return v.hasInterface(ctx, p.Name) }) != nil {
			return true, fmt.Errorf("port row without interface: %w", ErrConflict)
		}
		iface = &vswitch.Interface{Name: p.Name}
		err = getByIndex(ctx, v.c, iface)
	}
	if err != nil {
		return false, fmt.Errorf("get interface: %w", err)
	}
	owner, ok := OwnerFromExternalIDs(iface.ExternalIDs)
	switch {
	case !ok:
		return true, fmt.Errorf("exists, not owned by sdncni: %w", ErrConflict)
	case owner != p.Owner:
		return true, fmt.Errorf("exists for %+v: %w", owner, ErrConflict)
	case iface.ExternalIDs[KeyIfaceID] != p.IfaceID:
		return true, fmt.Errorf("exists with iface-id %q: %w", iface.ExternalIDs[KeyIfaceID], ErrConflict)
	}
	return true, nil
}

func (v *VSwitch) hasInterface(ctx context.Context, name string) bool {
	return getByIndex(ctx, v.c, &vswitch.Interface{Name: name}) == nil
}

// DeletePort removes port name (and its interfaces) from whatever bridge holds it;
// bridge names the expected one and is used only in messages. A missing port is not an
// error. A port without sdncni's owner mark is left alone and ErrConflict returned.
func (v *VSwitch) DeletePort(ctx context.Context, bridge, name string) error {
	if err := v.deletePort(ctx, name); err != nil {
		return fmt.Errorf("delete port %s from %s: %w", name, bridge, err)
	}
	return nil
}

func (v *VSwitch) deletePort(ctx context.Context, name string) error {
	port := &vswitch.Port{Name: name}
	err := getByIndex(ctx, v.c, port)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get port: %w", err)
	}
	if !owned(port.ExternalIDs) {
		return fmt.Errorf("not owned by sdncni: %w", ErrConflict)
	}
	br := &vswitch.Bridge{}
	ops, err := v.c.WhereAll(br, model.Condition{
		Field: &br.Ports, Function: ovsdb.ConditionIncludes, Value: []string{port.UUID},
	}).Mutate(br, model.Mutation{
		Field: &br.Ports, Mutator: ovsdb.MutateOperationDelete, Value: []string{port.UUID},
	})
	if err != nil {
		return fmt.Errorf("mutate ops: %w", err)
	}
	del, err := v.c.Where(&vswitch.Port{UUID: port.UUID}).Delete()
	if err != nil {
		return fmt.Errorf("delete ops: %w", err)
	}
	ops = append(ops, del...)
	for _, uuid := range port.Interfaces {
		del, err := v.c.Where(&vswitch.Interface{UUID: uuid}).Delete()
		if err != nil {
			return fmt.Errorf("delete ops: %w", err)
		}
		ops = append(ops, del...)
	}
	if _, err := transact(ctx, v.c, ops); err != nil {
		return err
	}
	return waitUntil(ctx, "port "+name+" gone from cache", func(ctx context.Context) bool {
		return errors.Is(getByIndex(ctx, v.c, &vswitch.Port{Name: name}), ErrNotFound) && !v.hasInterface(ctx, name)
	})
}

// GetPort reports on the interface called name; ErrNotFound if there is none.
func (v *VSwitch) GetPort(ctx context.Context, name string) (PortInfo, error) {
	iface := &vswitch.Interface{Name: name}
	if err := getByIndex(ctx, v.c, iface); err != nil {
		return PortInfo{}, fmt.Errorf("get port %s: %w", name, err)
	}
	return portInfo(iface), nil
}

// ListOwnedPorts returns every interface that carries sdncni's owner mark.
func (v *VSwitch) ListOwnedPorts(ctx context.Context) ([]PortInfo, error) {
	var ifaces []vswitch.Interface
	err := v.c.WhereCache(func(i *vswitch.Interface) bool { return owned(i.ExternalIDs) }).List(ctx, &ifaces)
	if err != nil {
		return nil, fmt.Errorf("list owned ports: %w", err)
	}
	out := make([]PortInfo, 0, len(ifaces))
	for i := range ifaces {
		out = append(out, portInfo(&ifaces[i]))
	}
	return out, nil
}

// WaitOVNInstalled blocks until ovn-controller marks interface name as installed
// (external_ids ovn-installed="true"), ctx ends, or the interface disappears
// (ErrNotFound).
func (v *VSwitch) WaitOVNInstalled(ctx context.Context, name string) error {
	t := newTicker()
	defer t.Stop()
	for {
		info, err := v.GetPort(ctx, name)
		if err != nil {
			return fmt.Errorf("wait ovn-installed: %w", err)
		}
		if info.OVNInstalled {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait ovn-installed on %s: %w", name, ctx.Err())
		case <-t.C:
		}
	}
}

func portInfo(i *vswitch.Interface) PortInfo {
	owner, _ := OwnerFromExternalIDs(i.ExternalIDs)
	info := PortInfo{
		Name:         i.Name,
		Type:         i.Type,
		IfaceID:      i.ExternalIDs[KeyIfaceID],
		Owner:        owner,
		OVNInstalled: i.ExternalIDs[KeyOVNInstalled] == "true",
	}
	if i.Ofport != nil {
		info.OFPort = *i.Ofport
	}
	if i.Error != nil {
		info.Error = *i.Error
	}
	return info
}
