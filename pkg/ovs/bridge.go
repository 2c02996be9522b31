package ovs

import (
	"context"
	"errors"
	"fmt"

	"github.com/ovn-kubernetes/libovsdb/client"
	"github.com/ovn-kubernetes/libovsdb/model"
	"github.com/ovn-kubernetes/libovsdb/ovsdb"

	"github.com/sdncni/sdncni/pkg/ovs/model/vswitch"
)

// EnsureBridge creates bridge name (with its internal port) if it is missing and makes
// its datapath type ("netdev" for the userspace datapath, "system" for the kernel one)
// and fail mode "secure" (no flows until OVN programs them) what they should be.
func (v *VSwitch) EnsureBridge(ctx context.Context, name, datapathType string) error {
	if name == "" {
		return fmt.Errorf("ensure bridge: empty name")
	}
	for attempt := 0; ; attempt++ {
		err := v.ensureBridge(ctx, name, datapathType)
		if err != nil && isConstraintViolation(err) && attempt == 0 {
			// Someone created it between our read and our write; reconcile once more.
			if werr := waitUntil(ctx, "bridge "+name, func(ctx context.Context) bool { return v.bridge(ctx, name) != nil }); werr != nil {
				return fmt.Errorf("ensure bridge %s: %w", name, err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("ensure bridge %s: %w", name, err)
		}
		return nil
	}
}

func (v *VSwitch) ensureBridge(ctx context.Context, name, datapathType string) error {
	secure := vswitch.BridgeFailModeSecure
	if br := v.bridge(ctx, name); br != nil {
		if br.DatapathType == datapathType && br.FailMode != nil && *br.FailMode == secure {
			return nil
		}
		want := &vswitch.Bridge{UUID: br.UUID, DatapathType: datapathType, FailMode: &secure}
		ops, err := v.c.Where(want).Update(want, &want.DatapathType, &want.FailMode)
		if err != nil {
			return fmt.Errorf("update ops: %w", err)
		}
		if _, err := transact(ctx, v.c, ops); err != nil {
			return err
		}
		return waitUntil(ctx, "bridge "+name+" update", func(ctx context.Context) bool {
			b := v.bridge(ctx, name)
			return b != nil && b.DatapathType == datapathType && b.FailMode != nil && *b.FailMode == secure
		})
	}
	root, err := v.root(ctx)
	if err != nil {
		return err
	}
	iface := &vswitch.Interface{UUID: "new_iface", Name: name, Type: "internal"}
	port := &vswitch.Port{UUID: "new_port", Name: name, Interfaces: []string{iface.UUID}}
	br := &vswitch.Bridge{
		UUID:         "new_bridge",
		Name:         name,
		Ports:        []string{port.UUID},
		DatapathType: datapathType,
		FailMode:     &secure,
		ExternalIDs:  map[string]string{KeyOwner: OwnerValue},
	}
	ops, err := createOps(v.c, iface, port, br)
	if err != nil {
		return fmt.Errorf("create ops: %w", err)
	}
	mut, err := v.c.Where(root).Mutate(root, model.Mutation{
		Field: &root.Bridges, Mutator: ovsdb.MutateOperationInsert, Value: []string{br.UUID},
	})
	if err != nil {
		return fmt.Errorf("mutate ops: %w", err)
	}
	if _, err := transact(ctx, v.c, append(ops, mut...)); err != nil {
		return err
	}
	return waitUntil(ctx, "bridge "+name, func(ctx context.Context) bool { return v.bridge(ctx, name) != nil })
}

// bridge returns the cached bridge called name, or nil.
func (v *VSwitch) bridge(ctx context.Context, name string) *vswitch.Bridge {
	var brs []vswitch.Bridge
	err := v.c.WhereCache(func(b *vswitch.Bridge) bool { return b.Name == name }).List(ctx, &brs)
	if err != nil || len(brs) == 0 {
		return nil
	}
	return &brs[0]
}

// root returns the Open_vSwitch table's single row.
func (v *VSwitch) root(ctx context.Context) (*vswitch.OpenvSwitch, error) {
	var rows []vswitch.OpenvSwitch
	if err := v.c.List(ctx, &rows); err != nil {
		return nil, fmt.Errorf("list Open_vSwitch: %w", err)
	}
	if len(rows) != 1 {
		return nil, fmt.Errorf("Open_vSwitch table has %d rows, want 1 (run 'ovs-vsctl init')", len(rows))
	}
	return &rows[0], nil
}

// getByIndex reads m (with an index column set) from the cache, mapping libovsdb's
// not-found to ErrNotFound.
func getByIndex(ctx context.Context, c client.Client, m model.Model) error {
	if err := c.Get(ctx, m); err != nil {
		if errors.Is(err, client.ErrNotFound) {
			return ErrNotFound
		}
		return err
	}
	return nil
}
