package attach

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/sdncni/sdncni/pkg/datapath"
	"github.com/sdncni/sdncni/pkg/ipam"
	"github.com/sdncni/sdncni/pkg/ovs"
)

// ErrPodGone means the runtime has deleted the pod of an attachment: its host veth is
// gone. The kernel deletes both ends of a veth pair together, when the pod's netns goes
// or its interface is deleted, so a host veth whose peer lives in another netns is the
// proof that the pod still runs.
var ErrPodGone = errors.New("pod gone")

// Backoff between reconciliation attempts of unfinished attachments.
const (
	retryMin = 500 * time.Millisecond
	retryMax = 30 * time.Second
)

// ReconcileReport says what Reconcile (or RetryPending) found.
type ReconcileReport struct {
	Kept     int // pods that run, complete or repaired; datapath re-adopted
	Repaired int // of Kept: pods that had a piece recreated
	Removed  int // attachments of pods the runtime deleted, removed
	// Pending are attachments left unfinished for a reason that may pass (a database
	// unavailable, a timeout, a piece that could not be recreated yet). Nothing of
	// theirs was removed; RetryPending goes on with them.
	Pending []Key
	// Unlisted: the attachments could not be listed within the budget (a store
	// unavailable); nothing was touched and RetryPending starts over.
	Unlisted bool
}

// Done reports whether nothing is left for RetryPending.
func (r ReconcileReport) Done() bool { return !r.Unlisted && len(r.Pending) == 0 }

// outcome is what reconciling one attachment came to.
type outcome int

const (
	outcomeKept     outcome = iota // complete; datapath re-adopted
	outcomeRepaired                // a running pod had pieces recreated
	outcomeRemoved                 // the pod was gone; its leftovers removed
	outcomeRetry                   // unfinished for a reason that may pass; nothing removed
)

// classify tells what an error of repair means. Only ErrPodGone, a fact about the
// kernel, leads to removal; every other error (OVSDB or NB unavailable, a timeout, a
// store that cannot be read, a network not known yet, a piece that could not be
// recreated) leaves the pod's state in place to be retried.
func classify(err error) outcome {
	switch {
	case err == nil:
		return outcomeKept
	case errors.Is(err, ErrPodGone):
		return outcomeRemoved
	default:
		return outcomeRetry
	}
}

// Reconcile runs when the controller starts, before it serves requests. For every
// attachment any store knows of, it tells a pod the runtime still has (its host veth
// exists, its peer in another netns) from one that is gone:
//
//   - a running pod is repaired with ADD's own idempotent steps: a missing OVS port,
//     OVN logical switch port, address record, BPF program or map entry is recreated
//     from what the other pieces record, and its fast-path state is re-adopted in place
//     (programs are replaced, never detached);
//   - a gone pod's leftovers are removed.
//
// Each attempt at an attachment runs on its own context, bounded by
// Config.ReconcileTimeout and derived from ctx (the controller's lifetime, not a start-up
// deadline). Any error but ErrPodGone leaves the attachment in place; it is retried with
// backoff until Config.ReconcileBudget is spent, and what is still unfinished then is
// in the report's Pending for RetryPending. A running pod whose datapath could not be
// attached is left with its host veth down (fail closed). Last, links and datapath
// entries of no known attachment are removed.
func (m *Manager) Reconcile(ctx context.Context) (ReconcileReport, error) {
	return m.reconcile(ctx, true)
}

// reconcile is Reconcile; sweep false leaves stray links and entries to GC (the node
// serves already, and an ADD in flight has links no listing knew of).
func (m *Manager) reconcile(ctx context.Context, sweep bool) (ReconcileReport, error) {
	budget, cancel := context.WithTimeout(ctx, m.cfg.ReconcileBudget)
	defer cancel()
	var keys map[Key]bool
	err := m.retryWithin(budget, func() error {
		actx, cancel := context.WithTimeout(ctx, m.cfg.ReconcileTimeout)
		defer cancel()
		var err error
		keys, err = m.knownKeys(actx)
		return err
	})
	if err != nil {
		// Without the full list a running pod could look like a stray link: touch nothing.
		return ReconcileReport{Unlisted: true}, fmt.Errorf("list attachments: %w", err)
	}
	all := make([]Key, 0, len(keys))
	for k := range keys {
		all = append(all, k)
	}
	rep, removed := m.reconcileKeys(ctx, budget, all)
	if !sweep {
		return rep, nil
	}
	keep := map[Key]bool{}
	for k := range keys {
		if !removed[k] {
			keep[k] = true // pending ones too: their state stays
		}
	}
	sctx, scancel := context.WithTimeout(ctx, m.cfg.ReconcileTimeout)
	defer scancel()
	return rep, m.sweep(sctx, keep)
}

// RetryPending goes on with what Reconcile left unfinished, one round at a time with
// backoff up to 30 s between rounds, until nothing is left or ctx ends; run it in the
// background once the node serves. It returns the last round's report.
func (m *Manager) RetryPending(ctx context.Context, rep ReconcileReport) ReconcileReport {
	wait := retryMin
	for !rep.Done() {
		select {
		case <-ctx.Done():
			return rep
		case <-time.After(wait):
		}
		wait = min(2*wait, retryMax)
		if rep.Unlisted {
			next, err := m.reconcile(ctx, false)
			if err != nil {
				m.log.Error(err, "reconcile incomplete; will retry")
			}
			rep = next
			continue
		}
		var next ReconcileReport
		next.Pending = m.round(ctx, ctx, rep.Pending, &next, map[Key]bool{})
		m.log.Info("retried unfinished attachments", "kept", next.Kept, "repaired", next.Repaired,
			"removed", next.Removed, "pending", len(next.Pending))
		rep = next
	}
	return rep
}

// reconcileKeys attempts each key, repeating rounds over the unfinished ones with
// backoff while budget lasts (no new attempt starts after it ends). It returns the
// report and the keys whose attachments were removed.
func (m *Manager) reconcileKeys(ctx, budget context.Context, keys []Key) (ReconcileReport, map[Key]bool) {
	var rep ReconcileReport
	removed := map[Key]bool{}
	pending := slices.Clone(keys)
	slices.SortFunc(pending, func(a, b Key) int {
		return strings.Compare(a.ContainerID+"/"+a.IfName, b.ContainerID+"/"+b.IfName)
	})
	wait := retryMin
	for {
		pending = m.round(ctx, budget, pending, &rep, removed)
		if len(pending) == 0 {
			break
		}
		select {
		case <-budget.Done():
		case <-time.After(wait):
		}
		if budget.Err() != nil {
			break
		}
		wait = min(2*wait, retryMax)
	}
	rep.Pending = pending
	return rep, removed
}

// round makes one attempt at each key (none once budget has ended), counts the outcomes
// in rep and removed, and returns the keys left unfinished.
func (m *Manager) round(ctx, budget context.Context, keys []Key, rep *ReconcileReport, removed map[Key]bool) []Key {
	var again []Key
	for _, k := range keys {
		if budget.Err() != nil {
			again = append(again, k)
			continue
		}
		switch o, err := m.reconcileOne(ctx, k); o {
		case outcomeKept:
			rep.Kept++
		case outcomeRepaired:
			rep.Kept++
			rep.Repaired++
		case outcomeRemoved:
			rep.Removed++
			removed[k] = true
		default:
			m.log.Info("attachment unfinished; kept in place, will retry", "containerID", k.ContainerID,
				"ifname", k.IfName, "reason", err.Error())
			again = append(again, k)
		}
	}
	return again
}

// reconcileOne makes one attempt at k on its own bounded context.
func (m *Manager) reconcileOne(ctx context.Context, k Key) (outcome, error) {
	defer m.locks.lock(k.ContainerID)()
	actx, cancel := context.WithTimeout(ctx, m.cfg.ReconcileTimeout)
	defer cancel()
	fixed, err := m.repair(actx, k)
	switch o := classify(err); o {
	case outcomeRemoved:
		if err := m.remove(actx, k); err != nil {
			return outcomeRetry, fmt.Errorf("remove attachment of gone pod: %w", err)
		}
		m.log.Info("pod gone; attachment removed", "containerID", k.ContainerID, "ifname", k.IfName)
		return o, nil
	case outcomeKept:
		if len(fixed) > 0 {
			m.log.Info("running pod repaired", "containerID", k.ContainerID, "ifname", k.IfName,
				"recreated", strings.Join(fixed, ", "))
			return outcomeRepaired, nil
		}
		return o, nil
	default:
		return o, err
	}
}

// repair makes the attachment of a running pod complete with ADD's idempotent steps and
// says which pieces it recreated. It returns ErrPodGone (wrapped) when the pod is gone,
// and removes nothing. Until the datapath is attached, any failure leaves the host veth
// down: the pod's packets must not reach the node without the programs.
func (m *Manager) repair(ctx context.Context, k Key) (fixed []string, err error) {
	names := NamesFor(k)
	host, err := podHostLink(names.HostIf)
	if err != nil {
		return nil, err
	}
	attached := false
	defer func() {
		if err != nil && !attached {
			if derr := netlink.LinkSetDown(host); derr != nil {
				err = errors.Join(err, fmt.Errorf("set %s down: %w", names.HostIf, derr))
			}
		}
	}()

	alloc, lsp, err := m.podAddress(ctx, k, names)
	if err != nil {
		return nil, err
	}
	if lsp != nil {
		fixed = append(fixed, "address record")
	}
	n, ok := m.deps.Networks.ByName(alloc.Pool)
	if !ok {
		return fixed, fmt.Errorf("%w: %s", ErrUnknownNetwork, alloc.Pool)
	}
	addr := alloc.Addr.Addr()
	mac := MACFor(addr)
	owner := ovs.Owner{PodNamespace: alloc.Owner.PodNamespace, PodName: alloc.Owner.PodName,
		ContainerID: k.ContainerID, IfName: k.IfName, Network: n.Name, Node: m.cfg.NodeName}

	// The OVS port first: it is local, and with it ovn-controller binds the pod's
	// logical port even while NB is unavailable.
	port, err := m.deps.VSwitch.GetPort(ctx, names.OVSIf)
	switch {
	case errors.Is(err, ovs.ErrNotFound):
		if err := m.deps.VSwitch.AddPort(ctx, m.cfg.Bridge, ovs.Port{
			Name: names.OVSIf, Type: "internal", IfaceID: names.LSP, Owner: owner, MTU: n.MTU,
		}); err != nil {
			return fixed, fmt.Errorf("recreate ovs port %s: %w", names.OVSIf, err)
		}
		fixed = append(fixed, "ovs port")
	case err != nil:
		return fixed, fmt.Errorf("ovs port %s: %w", names.OVSIf, err)
	case port.IfaceID != names.LSP:
		return fixed, fmt.Errorf("ovs port %s is bound to %q, want %q: %w", names.OVSIf, port.IfaceID, names.LSP, ovs.ErrConflict)
	}
	ovsLink, err := m.prepareOVSLink(ctx, names.OVSIf, n.MTU)
	if err != nil {
		return fixed, err
	}
	ep := datapath.Endpoint{VPN: n.ID, HostIfIndex: host.Attrs().Index, OVSIfIndex: ovsLink.Attrs().Index,
		HostIfName: names.HostIf, OVSIfName: names.OVSIf, MAC: mac, IP: addr,
		FastPath: m.podFastPath(ctx, alloc.Owner.PodNamespace, alloc.Owner.PodName)}
	if m.deps.Datapath.Check(ctx, ep) != nil {
		fixed = append(fixed, "datapath")
	}
	if err := m.deps.Datapath.Attach(ctx, ep); err != nil {
		return fixed, fmt.Errorf("re-adopt datapath: %w", err)
	}
	attached = true // Attach leaves the host veth up only with its programs

	if lsp == nil {
		info, err := m.deps.Northbound.GetLogicalPort(ctx, names.LSP)
		switch {
		case errors.Is(err, ovs.ErrNotFound):
		case err != nil:
			return fixed, fmt.Errorf("logical port %s: %w", names.LSP, err)
		default:
			lsp = &info
		}
	}
	if lsp == nil {
		if err := m.deps.Northbound.AddLogicalPort(ctx, n.Name, ovs.LogicalPort{
			Name: names.LSP, MAC: mac, IPs: []netip.Addr{addr}, Owner: owner,
		}); err != nil {
			return fixed, fmt.Errorf("recreate logical port %s: %w", names.LSP, err)
		}
		fixed = append(fixed, "ovn logical port")
	} else if lsp.MAC.String() != mac.String() || !slices.Contains(lsp.IPs, addr) {
		return fixed, fmt.Errorf("logical port %s has addresses %s %v, want %s %s: %w", names.LSP, lsp.MAC, lsp.IPs, mac, addr, ovs.ErrConflict)
	}
	wctx, cancel := context.WithTimeout(ctx, m.cfg.OVNWait)
	defer cancel()
	if err := m.deps.VSwitch.WaitOVNInstalled(wctx, names.OVSIf); err != nil {
		return fixed, fmt.Errorf("wait for ovn-controller to install %s: %w", names.OVSIf, err)
	}
	return fixed, linkUp(names.OVSIf)
}

// podAddress returns the pod's address record. When the store has none (the operator
// replaced a corrupt store) the address is taken back from the pod's OVN port before
// anyone else gets it; lsp is then that port (nil when the store had the record).
func (m *Manager) podAddress(ctx context.Context, k Key, names Names) (ipam.Allocation, *ovs.LogicalPortInfo, error) {
	allocs, err := m.deps.IPAM.Get(ctx, ipam.Owner{ContainerID: k.ContainerID, IfName: k.IfName})
	if err != nil {
		return ipam.Allocation{}, nil, fmt.Errorf("look up address: %w", err)
	}
	if len(allocs) > 0 {
		return allocs[0], nil, nil
	}
	lsp, err := m.deps.Northbound.GetLogicalPort(ctx, names.LSP)
	if err != nil {
		return ipam.Allocation{}, nil, fmt.Errorf("no address recorded; recover it from logical port %s: %w", names.LSP, err)
	}
	n, ok := m.deps.Networks.ByName(lsp.Owner.Network)
	if !ok || len(lsp.IPs) == 0 {
		return ipam.Allocation{}, nil, fmt.Errorf("no address recorded and no network/IP on %s to recover it from", names.LSP)
	}
	io := ipam.Owner{ContainerID: k.ContainerID, IfName: k.IfName, PodNamespace: lsp.Owner.PodNamespace, PodName: lsp.Owner.PodName}
	a, err := m.deps.IPAM.Reserve(ctx, n.Pool(), io, lsp.IPs[0])
	if err != nil {
		return ipam.Allocation{}, nil, fmt.Errorf("re-reserve %s: %w", lsp.IPs[0], err)
	}
	m.log.Info("re-reserved a running pod's address", "containerID", k.ContainerID, "addr", a.Addr)
	return a, &lsp, nil
}

// podHostLink returns the host veth of a running pod, or ErrPodGone (wrapped) when the
// pod is gone: no such link, or one that is not a veth with its peer in another netns
// (not a pod's). Other netlink errors are returned as they are: they may pass.
func podHostLink(name string) (netlink.Link, error) {
	l, err := netlink.LinkByName(name)
	var nf netlink.LinkNotFoundError
	switch {
	case errors.As(err, &nf):
		return nil, fmt.Errorf("host veth %s: %w", name, ErrPodGone)
	case err != nil:
		return nil, fmt.Errorf("host veth %s: %w", name, err)
	}
	if _, ok := l.(*netlink.Veth); !ok {
		return nil, fmt.Errorf("host veth %s is a %s: %w", name, l.Type(), ErrPodGone)
	}
	if l.Attrs().NetNsID < 0 {
		return nil, fmt.Errorf("host veth %s has its peer in the node netns, not a pod's: %w", name, ErrPodGone)
	}
	return l, nil
}

// retryWithin calls f until it succeeds or budget ends, with backoff; f's last error.
func (m *Manager) retryWithin(budget context.Context, f func() error) error {
	wait := retryMin
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-budget.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, retryMax)
	}
}
