package attach

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/sdncni/sdncni/pkg/datapath"
	"github.com/sdncni/sdncni/pkg/ipam"
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

// ReconcileReport says what Reconcile found.
type ReconcileReport struct {
	Kept    int // complete attachments, datapath re-adopted
	Removed int // half-made attachments removed
}

// Reconcile runs when the controller starts, before it serves requests: complete
// attachments (address, host veth, OVS port, OVN port all present) keep running and get
// their fast-path state re-adopted; half-made ones (a crash during ADD or DEL) are
// removed, as are links and datapath entries that belong to no attachment.
func (m *Manager) Reconcile(ctx context.Context) (ReconcileReport, error) {
	var rep ReconcileReport
	keys, err := m.knownKeys(ctx)
	if err != nil {
		return rep, err
	}
	keep := map[Key]bool{}
	var errs []error
	for k := range keys {
		unlock := m.locks.lock(k.ContainerID)
		ok, err := m.readopt(ctx, k)
		if err != nil {
			m.log.Info("attachment incomplete; removing", "containerID", k.ContainerID, "ifname", k.IfName, "reason", err.Error())
		}
		if ok {
			keep[k] = true
			rep.Kept++
		} else {
			if err := m.remove(ctx, k); err != nil {
				errs = append(errs, fmt.Errorf("remove half-made %s/%s: %w", k.ContainerID, k.IfName, err))
			}
			rep.Removed++
		}
		unlock()
	}
	errs = append(errs, m.sweep(ctx, keep))
	return rep, errors.Join(errs...)
}

// readopt reports whether k is complete and, if so, makes sure its datapath state is in
// place (Attach adopts what is already attached without a gap).
func (m *Manager) readopt(ctx context.Context, k Key) (bool, error) {
	names := NamesFor(k)
	host, err := podnet.HostLink(names.HostIf)
	if err != nil {
		return false, err
	}
	port, err := m.deps.VSwitch.GetPort(ctx, names.OVSIf)
	if err != nil || port.IfaceID != names.LSP {
		return false, fmt.Errorf("ovs port %s: %v", names.OVSIf, err)
	}
	lsp, err := m.deps.Northbound.GetLogicalPort(ctx, names.LSP)
	if err != nil {
		return false, fmt.Errorf("logical port %s: %w", names.LSP, err)
	}
	io := ipam.Owner{ContainerID: k.ContainerID, IfName: k.IfName, PodNamespace: lsp.Owner.PodNamespace, PodName: lsp.Owner.PodName}
	allocs, err := m.deps.IPAM.Get(ctx, io)
	if err != nil {
		return false, fmt.Errorf("look up address: %w", err)
	}
	if len(allocs) == 0 {
		// The pod runs but the store lost its address (the operator replaced a corrupt
		// store): take the address back from the OVN port before anyone else gets it.
		n, ok := m.deps.Networks.ByName(lsp.Owner.Network)
		if !ok || len(lsp.IPs) == 0 {
			return false, fmt.Errorf("no address and no network/IP on %s to recover it from", names.LSP)
		}
		a, err := m.deps.IPAM.Reserve(ctx, n.Pool(), io, lsp.IPs[0])
		if err != nil {
			return false, fmt.Errorf("re-reserve %s: %w", lsp.IPs[0], err)
		}
		m.log.Info("re-reserved a running pod's address", "containerID", k.ContainerID, "addr", a.Addr)
		allocs = []ipam.Allocation{a}
	}
	n, ok := m.deps.Networks.ByName(allocs[0].Pool)
	if !ok {
		return false, fmt.Errorf("%w: %s", ErrUnknownNetwork, allocs[0].Pool)
	}
	ovsLink, err := m.prepareOVSLink(ctx, names.OVSIf, n.MTU)
	if err != nil {
		return false, err
	}
	addr := allocs[0].Addr.Addr()
	ep := datapath.Endpoint{VPN: n.ID, HostIfIndex: host.Attrs().Index, OVSIfIndex: ovsLink.Attrs().Index,
		HostIfName: names.HostIf, OVSIfName: names.OVSIf, MAC: MACFor(addr), IP: addr, FastPath: true}
	if err := m.deps.Datapath.Attach(ctx, ep); err != nil {
		return false, fmt.Errorf("re-adopt datapath: %w", err)
	}
	return true, nil
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
