package attach

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/sdncni/sdncni/pkg/podnet"
)

// GC removes every attachment of this node whose key is not in valid: addresses, OVS
// ports, OVN ports, host veths and fast-path state. It keeps going past individual
// errors and returns them joined.
func (m *Manager) GC(ctx context.Context, valid []Key) error {
	keep := map[Key]bool{}
	for _, k := range valid {
		keep[k] = true
	}
	keys, err := m.knownKeys(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for k := range keys {
		if keep[k] {
			continue
		}
		unlock := m.locks.lock(k.ContainerID)
		if err := m.remove(ctx, k); err != nil {
			errs = append(errs, fmt.Errorf("gc %s/%s: %w", k.ContainerID, k.IfName, err))
		}
		unlock()
	}
	errs = append(errs, m.sweep(ctx, keep))
	return errors.Join(errs...)
}

// knownKeys collects the keys of every attachment of this node that any store knows of.
// Rows with a role (management ports) and addresses of node owners are not attachments.
func (m *Manager) knownKeys(ctx context.Context) (map[Key]bool, error) {
	keys := map[Key]bool{}
	allocs, err := m.deps.IPAM.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range allocs {
		if !strings.HasPrefix(a.Owner.ContainerID, NodeOwnerPrefix) {
			keys[Key{a.Owner.ContainerID, a.Owner.IfName}] = true
		}
	}
	ports, err := m.deps.VSwitch.ListOwnedPorts(ctx)
	if err != nil {
		return nil, fmt.Errorf("list ovs ports: %w", err)
	}
	for _, p := range ports {
		if p.Owner.Role == "" {
			keys[Key{p.Owner.ContainerID, p.Owner.IfName}] = true
		}
	}
	lsps, err := m.deps.Northbound.ListOwnedLogicalPorts(ctx)
	if err != nil {
		return nil, fmt.Errorf("list logical ports: %w", err)
	}
	for _, p := range lsps {
		if p.Owner.Node == m.cfg.NodeName && p.Owner.Role == "" {
			keys[Key{p.Owner.ContainerID, p.Owner.IfName}] = true
		}
	}
	delete(keys, Key{})
	return keys, nil
}

// sweep removes links and datapath state of ours that belong to no kept attachment:
// endpoints (programs, link pins and entries), host veths, and then every per-pod map
// entry left without its attachment (a destination entry whose endpoint is gone, an OVS
// port's entry whose pod entry is gone). What it removed from the maps is logged.
func (m *Manager) sweep(ctx context.Context, keep map[Key]bool) error {
	valid := map[string]bool{}
	for k := range keep {
		n := NamesFor(k)
		valid[n.HostIf], valid[n.OVSIf] = true, true
	}
	var errs []error
	eps, err := m.deps.Datapath.Endpoints(ctx)
	if err != nil {
		errs = append(errs, fmt.Errorf("list datapath endpoints: %w", err))
	}
	for _, ep := range eps {
		if !valid[ep.HostIfName] && !valid[ep.OVSIfName] {
			if err := m.deps.Datapath.Detach(ctx, ep); err != nil {
				errs = append(errs, fmt.Errorf("detach stale endpoint %s: %w", ep.HostIfName, err))
			}
		}
	}
	links, err := ourLinks()
	if err != nil {
		errs = append(errs, err)
	}
	for _, l := range links {
		if valid[l.Attrs().Name] {
			continue
		}
		if _, isVeth := l.(*netlink.Veth); !isVeth {
			continue // an OVS tap goes away with its OVS port
		}
		if err := podnet.Teardown(ctx, l.Attrs().Name); err != nil {
			errs = append(errs, fmt.Errorf("delete stale link %s: %w", l.Attrs().Name, err))
		}
	}
	// Last: the links removed above leave their entries behind.
	rep, err := m.deps.Datapath.Sweep(ctx, valid)
	if err != nil {
		errs = append(errs, fmt.Errorf("sweep datapath maps: %w", err))
	}
	if rep.Total() > 0 {
		m.log.Info("swept stale datapath entries", "endpoints", rep.Endpoints, "destinations", rep.Destinations)
	}
	return errors.Join(errs...)
}
