package attach

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/go-logr/logr"
	"github.com/vishvananda/netlink"

	"github.com/sdncni/sdncni/pkg/datapath"
	"github.com/sdncni/sdncni/pkg/ipam"
	"github.com/sdncni/sdncni/pkg/ovs"
	"github.com/sdncni/sdncni/pkg/podnet"
)

// Errors callers branch on.
var (
	// ErrExists: the attachment (container ID, ifname) is already in place; DEL it first.
	ErrExists = errors.New("attachment already exists")
	// ErrUnknownNetwork: the network an existing attachment belongs to is not served here.
	ErrUnknownNetwork = errors.New("unknown network")
	// ErrNetworkNotReady: the pod's network cannot take pods yet (being realised, in
	// conflict); the runtime should try again later.
	ErrNetworkNotReady = errors.New("network not ready")
)

// Config tunes a Manager.
type Config struct {
	Bridge   string        // OVS integration bridge, e.g. br-int
	NodeName string        // ownership mark; GC never touches other nodes' OVN ports
	OVNWait  time.Duration // how long ADD waits for ovn-controller to install the port
	LinkWait time.Duration // how long ADD waits for ovs-vswitchd to create the port's tap
	// TxOffloadOff turns tx offload off on every pod's OVS port (the tap through which
	// its traffic enters OVS), so the kernel segments and checksums what the fast path
	// hands to OVS: needed when OVS tunnels in a way that cannot carry offloaded packets
	// (OVS 3.1's userspace Geneve). The pod's own interface keeps its offloads.
	TxOffloadOff bool
	// ReconcileTimeout bounds one attempt of Reconcile at one attachment;
	// ReconcileBudget bounds how long Reconcile retries unfinished ones before it
	// returns them as pending.
	ReconcileTimeout time.Duration
	ReconcileBudget  time.Duration
}

// Deps are the Manager's collaborators.
type Deps struct {
	VSwitch    vswitch
	Northbound northbound
	IPAM       addressStore
	Datapath   fastPath
	Networks   Networks
	// Policy keeps pods that a NetworkPolicy isolates off the fast path; nil: none is.
	Policy PodPolicy
}

// Manager attaches and detaches pods. See the package doc.
type Manager struct {
	cfg   Config
	deps  Deps
	log   logr.Logger
	locks keyedMutex
}

// New returns a Manager. Zero durations in cfg get defaults (10 s OVN wait, 5 s link
// wait, reconcile attempts of OVN wait + link wait + 10 s, a 10 s reconcile budget).
func New(cfg Config, deps Deps, log logr.Logger) *Manager {
	if cfg.OVNWait == 0 {
		cfg.OVNWait = 10 * time.Second
	}
	if cfg.LinkWait == 0 {
		cfg.LinkWait = 5 * time.Second
	}
	if cfg.ReconcileTimeout == 0 {
		// What ADD's steps may wait for, plus a write's wait for its own update.
		cfg.ReconcileTimeout = cfg.OVNWait + cfg.LinkWait + 10*time.Second
	}
	if cfg.ReconcileBudget == 0 {
		// Short: what is left then is retried in the background while the node serves.
		cfg.ReconcileBudget = 10 * time.Second
	}
	return &Manager{cfg: cfg, deps: deps, log: log}
}

// Request is one CNI request for an attachment.
type Request struct {
	Key
	Netns        string
	PodNamespace string
	PodName      string
}

func (m *Manager) owner(r Request, network string) ovs.Owner {
	return ovs.Owner{PodNamespace: r.PodNamespace, PodName: r.PodName, ContainerID: r.ContainerID,
		IfName: r.IfName, Network: network, Node: m.cfg.NodeName}
}

func ipamOwner(r Request) ipam.Owner {
	return ipam.Owner{ContainerID: r.ContainerID, IfName: r.IfName, PodNamespace: r.PodNamespace, PodName: r.PodName}
}

// EnsureNetworks realises every served network's OVN topology.
func (m *Manager) EnsureNetworks(ctx context.Context) error {
	for _, n := range m.deps.Networks.All() {
		if err := m.EnsureNetwork(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// EnsureNetwork realises one network's OVN topology (idempotent).
func (m *Manager) EnsureNetwork(ctx context.Context, n Network) error {
	if err := n.Validate(); err != nil {
		return err
	}
	gw := netip.PrefixFrom(n.Gateway, n.Prefix.Bits())
	err := m.deps.Northbound.EnsureNetwork(ctx, ovs.Network{
		Name:       n.Name,
		Subnets:    []netip.Prefix{n.Prefix},
		GatewayMAC: MACFor(n.Gateway),
		Gateways:   []netip.Prefix{gw},
	})
	if err != nil {
		return fmt.Errorf("ensure network %s: %w", n.Name, err)
	}
	return nil
}

// Add attaches a pod interface. On failure everything done so far is undone. It returns
// ErrExists when the attachment is already in place, podnet.ErrIfaceExists when the pod
// already has an interface of that name, and ipam.ErrExhausted when the pool is full
// (all wrapped).
func (m *Manager) Add(ctx context.Context, r Request) (_ *current.Result, err error) {
	defer m.locks.lock(r.ContainerID)()
	n, err := m.deps.Networks.ForNamespace(ctx, r.PodNamespace)
	if err != nil {
		return nil, fmt.Errorf("network of namespace %q: %w", r.PodNamespace, err)
	}
	names := NamesFor(r.Key)
	io := ipamOwner(r)
	if existing, err := m.deps.IPAM.Get(ctx, io); err != nil {
		return nil, fmt.Errorf("look up address: %w", err)
	} else if len(existing) > 0 {
		return nil, fmt.Errorf("%w: container %s ifname %s has %s", ErrExists, r.ContainerID, r.IfName, existing[0].Addr)
	}

	var undo []func(context.Context) error
	defer func() {
		if err == nil {
			return
		}
		// The caller's context may be what failed; undo on a fresh, bounded one.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		for i := len(undo) - 1; i >= 0; i-- {
			if uerr := undo[i](uctx); uerr != nil {
				m.log.Error(uerr, "undo failed ADD", "containerID", r.ContainerID, "ifname", r.IfName)
			}
		}
	}()

	alloc, n, err := AllocateAddress(ctx, m.deps.IPAM, m.deps.Networks, n, io)
	if err != nil {
		return nil, fmt.Errorf("allocate address in %s: %w", n.Name, err)
	}
	undo = append(undo, func(c context.Context) error { _, err := m.deps.IPAM.ReleaseOwner(c, io); return err })

	addr := netip.PrefixFrom(alloc.Addr.Addr(), n.Prefix.Bits())
	mac := MACFor(addr.Addr())
	pcfg := podnet.Config{NetNS: r.Netns, IfName: r.IfName, HostIfName: names.HostIf, MAC: mac,
		MTU: n.MTU, Addr: addr, Gateway: n.Gateway}
	link, err := podnet.Setup(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("set up pod interface: %w", err)
	}
	undo = append(undo, func(c context.Context) error { return podnet.Teardown(c, names.HostIf) })
	// Down until the datapath is attached (Attach sets it up): the pod's packets must
	// not reach the node's stack without the programs.
	if err := linkDown(names.HostIf); err != nil {
		return nil, err
	}

	owner := m.owner(r, n.Name)
	if err := m.deps.Northbound.AddLogicalPort(ctx, n.Name, ovs.LogicalPort{
		Name: names.LSP, MAC: mac, IPs: []netip.Addr{addr.Addr()}, Owner: owner,
	}); err != nil {
		return nil, fmt.Errorf("add logical port %s: %w", names.LSP, err)
	}
	undo = append(undo, func(c context.Context) error { return m.deps.Northbound.DeleteLogicalPort(c, n.Name, names.LSP) })

	if err := m.deps.VSwitch.AddPort(ctx, m.cfg.Bridge, ovs.Port{
		Name: names.OVSIf, Type: "internal", IfaceID: names.LSP, Owner: owner, MTU: n.MTU,
	}); err != nil {
		return nil, fmt.Errorf("add ovs port %s: %w", names.OVSIf, err)
	}
	undo = append(undo, func(c context.Context) error { return m.deps.VSwitch.DeletePort(c, m.cfg.Bridge, names.OVSIf) })

	ovsLink, err := m.prepareOVSLink(ctx, names.OVSIf, n.MTU)
	if err != nil {
		return nil, err
	}

	ep := datapath.Endpoint{VPN: n.ID, HostIfIndex: link.HostIndex, OVSIfIndex: ovsLink.Attrs().Index,
		HostIfName: names.HostIf, OVSIfName: names.OVSIf, MAC: mac, IP: addr.Addr(), FastPath: m.podFastPath(ctx, r.PodNamespace, r.PodName)}
	if err := m.deps.Datapath.Attach(ctx, ep); err != nil {
		return nil, fmt.Errorf("attach datapath: %w", err)
	}
	undo = append(undo, func(c context.Context) error {
		return errors.Join(linkDown(names.HostIf), m.deps.Datapath.Detach(c, ep))
	})

	wctx, cancel := context.WithTimeout(ctx, m.cfg.OVNWait)
	defer cancel()
	if err := m.deps.VSwitch.WaitOVNInstalled(wctx, names.OVSIf); err != nil {
		return nil, fmt.Errorf("wait for ovn-controller to install %s: %w", names.OVSIf, err)
	}
	if err := linkUp(names.OVSIf); err != nil {
		return nil, err
	}
	return result(r, n, names, link, mac, addr), nil
}

// prepareOVSLink waits for ovs-vswitchd to create the internal port's tap, then readies
// it: up, the pod's MTU, tx offload off with Config.TxOffloadOff, and no IPv6 of its own (nothing but pod traffic may reach OVS
// through it, or port security would see a stranger's MAC).
//
// ovs-vswitchd changes the device's flags while it adds the port (it turns promiscuous
// mode on with a read-modify-write of flags it read before): an "up" set before it is
// done is lost and the port stays down for good. So the link is set up only once OVS
// has assigned the port's ofport, which it does after that.
func (m *Manager) prepareOVSLink(ctx context.Context, name string, mtu int) (netlink.Link, error) {
	wctx, cancel := context.WithTimeout(ctx, m.cfg.LinkWait)
	defer cancel()
	var l netlink.Link
	for {
		var err error
		if l, err = netlink.LinkByName(name); err == nil {
			if p, perr := m.deps.VSwitch.GetPort(wctx, name); perr == nil && p.OFPort > 0 {
				break
			}
		}
		select {
		case <-wctx.Done():
			return nil, fmt.Errorf("wait for ovs-vswitchd to add %s: %w", name, wctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
	if err := setSysctl(fmt.Sprintf("net/ipv6/conf/%s/disable_ipv6", name), "1"); err != nil {
		return nil, err
	}
	if l.Attrs().MTU != mtu {
		if err := netlink.LinkSetMTU(l, mtu); err != nil {
			return nil, fmt.Errorf("set mtu of %s: %w", name, err)
		}
	}
	if m.cfg.TxOffloadOff {
		if err := podnet.DisableTxOffload(name); err != nil {
			return nil, err
		}
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return nil, fmt.Errorf("set %s up: %w", name, err)
	}
	return l, nil
}

// linkDown sets a link down; a missing link is not an error.
func linkDown(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("find %s: %w", name, err)
	}
	if err := netlink.LinkSetDown(l); err != nil {
		return fmt.Errorf("set %s down: %w", name, err)
	}
	return nil
}

// linkUp makes sure a link is administratively up (setting it up again if something
// took it down), and reports an error naming it otherwise.
func linkUp(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("ovs port %s: %w", name, err)
	}
	if l.Attrs().Flags&net.FlagUp != 0 {
		return nil
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	return nil
}

func result(r Request, n Network, names Names, link podnet.Link, mac net.HardwareAddr, addr netip.Prefix) *current.Result {
	podIdx := 1
	return &current.Result{
		CNIVersion: current.ImplementedSpecVersion,
		Interfaces: []*current.Interface{
			{Name: names.HostIf, Mac: link.HostMAC.String()},
			{Name: r.IfName, Mac: mac.String(), Mtu: n.MTU, Sandbox: r.Netns},
		},
		IPs: []*current.IPConfig{{
			Interface: &podIdx,
			Address:   net.IPNet{IP: addr.Addr().AsSlice(), Mask: net.CIDRMask(addr.Bits(), addr.Addr().BitLen())},
			Gateway:   n.Gateway.AsSlice(),
		}},
		Routes: []*types.Route{podnet.DefaultRoute(n.Gateway)},
	}
}
