package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/sdncni/sdncni/pkg/attach"
	"github.com/sdncni/sdncni/pkg/ipam"
	"github.com/sdncni/sdncni/pkg/ovs"
)

// vswitch is what the gateway needs of the local OVSDB (*ovs.VSwitch).
type vswitch interface {
	AddPort(ctx context.Context, bridge string, p ovs.Port) error
	DeletePort(ctx context.Context, bridge, name string) error
	GetPort(ctx context.Context, name string) (ovs.PortInfo, error)
	ListOwnedPorts(ctx context.Context) ([]ovs.PortInfo, error)
}

// northbound is what the gateway needs of OVN NB (*ovs.Northbound).
type northbound interface {
	AddLogicalPort(ctx context.Context, network string, lp ovs.LogicalPort) error
	DeleteLogicalPort(ctx context.Context, network, name string) error
	SetSourceRoutes(ctx context.Context, network string, owner ovs.Owner, routes []ovs.SourceRoute) error
}

// addresses is what the gateway needs of the address store (*ipam.Store).
type addresses interface {
	Allocate(ctx context.Context, p ipam.Pool, o ipam.Owner) (ipam.Allocation, error)
	Release(ctx context.Context, pool string, o ipam.Owner) error
}

var (
	_ vswitch    = (*ovs.VSwitch)(nil)
	_ northbound = (*ovs.Northbound)(nil)
	_ addresses  = (*ipam.Store)(nil)
)

// Config says where the gateway works.
type Config struct {
	Bridge string // integration bridge
	Node   string // this node's name (chassis), the owner mark of its rows
	// LinkWait bounds the wait for ovs-vswitchd to create a port's tap (default 10s).
	LinkWait time.Duration
	// ServiceCIDRs are the cluster's ClusterIP ranges: pods' packets to them that no
	// shared Service DNATed are dropped at the node instead of leaving it.
	ServiceCIDRs []netip.Prefix
	// ControlPlaneCIDRs are the API servers' addresses: connections from them, arriving
	// from the node network, may enter this node's pods (see writeNetfilter).
	ControlPlaneCIDRs []netip.Prefix
	// ClusterVPN names the VPN (the default VPN) whose pods on every node this node
	// reaches: its management port routes the whole CIDR, not only this node's blocks.
	// Other VPNs' pods the node reaches on this node only.
	ClusterVPN string
	// TxOffloadOff turns tx offload off on management ports, as on pods' OVS ports
	// (attach.Config.TxOffloadOff): the node's own TCP to a pod on another node crosses
	// the userspace Geneve tunnel, which cannot carry TSO packets.
	TxOffloadOff bool
}

// Gateway manages this node's management ports. It runs in the node's network
// namespace. Its methods are safe for concurrent use.
type Gateway struct {
	cfg  Config
	vs   vswitch
	nb   northbound
	ipam addresses
	log  logr.Logger
	mu   sync.Mutex
	// shared is what SetShared last wrote (normalised); sharedWritten says it did.
	shared        []SharedService
	sharedWritten bool
	// nodes and apiServers are what SetNodes last wrote; nodesWritten says it did.
	nodes        []netip.Addr
	apiServers   []netip.AddrPort
	nodesWritten bool
}

// New returns a Gateway; vs, nb and store are usually *ovs.VSwitch, *ovs.Northbound and
// *ipam.Store.
func New(cfg Config, vs vswitch, nb northbound, store addresses, log logr.Logger) *Gateway {
	if cfg.LinkWait == 0 {
		cfg.LinkWait = 10 * time.Second
	}
	return &Gateway{cfg: cfg, vs: vs, nb: nb, ipam: store, log: log}
}

// Reserve takes the management port's address of net on this node (in its first block)
// if it has none yet. Call it right after a block is claimed and before pods allocate
// from it, so the port's address does not depend on how many pods came first.
func (g *Gateway) Reserve(ctx context.Context, net attach.Network) (netip.Addr, error) {
	if len(net.Ranges) == 0 {
		return netip.Addr{}, fmt.Errorf("reserve management address of %s: %w", net.Name, ErrNoBlocks)
	}
	first := net.Ranges[0]
	for _, r := range net.Ranges[1:] {
		if r.Addr().Less(first.Addr()) {
			first = r
		}
	}
	one := net
	one.Ranges = []netip.Prefix{first}
	a, err := g.ipam.Allocate(ctx, one.Pool(), addrOwner(net.Name))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("reserve management address of %s: %w", net.Name, err)
	}
	return a.Addr.Addr(), nil
}

// Ensure creates or refreshes net's management port on this node: its address, logical
// switch port, OVS port, the tap's address and a route to each of net.Ranges (this
// node's blocks) through it, and the router's src-ip route of each block to it. With no
// ranges it removes the port (Remove).
func (g *Gateway) Ensure(ctx context.Context, net attach.Network) error {
	if len(net.Ranges) == 0 {
		return g.Remove(ctx, net.Name)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.ensure(ctx, net); err != nil {
		return fmt.Errorf("ensure management port of %s: %w", net.Name, err)
	}
	return nil
}

func (g *Gateway) ensure(ctx context.Context, net attach.Network) error {
	ip, err := g.Reserve(ctx, net)
	if err != nil {
		return err
	}
	names := NamesFor(net.Name, g.cfg.Node)
	mac := attach.MACFor(ip)
	owner := rowOwner(net.Name, g.cfg.Node)
	if err := g.nb.AddLogicalPort(ctx, net.Name, ovs.LogicalPort{Name: names.LSP, MAC: mac, IPs: []netip.Addr{ip},
		Owner: owner, MACOnlyPortSecurity: true}); err != nil {
		return err
	}
	if err := g.vs.AddPort(ctx, g.cfg.Bridge, ovs.Port{Name: names.Port, Type: "internal", IfaceID: names.LSP,
		Owner: owner, MTU: net.MTU}); err != nil {
		return err
	}
	if err := g.configureLink(ctx, names.Port, mac, ip, net); err != nil {
		return err
	}
	routes := make([]ovs.SourceRoute, 0, len(net.Ranges))
	for _, r := range net.Ranges {
		routes = append(routes, ovs.SourceRoute{Source: r, Nexthop: ip})
	}
	return g.nb.SetSourceRoutes(ctx, net.Name, ovs.Owner{Node: g.cfg.Node, Role: Role}, routes)
}

// Remove deletes vpn's management port on this node: the router's source routes of
// this node, the OVS port (its tap and routes go with it), the logical switch port and
// the address. What is already gone is not an error.
func (g *Gateway) Remove(ctx context.Context, vpn string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	names := NamesFor(vpn, g.cfg.Node)
	var errs []error
	if err := g.nb.SetSourceRoutes(ctx, vpn, ovs.Owner{Node: g.cfg.Node, Role: Role}, nil); err != nil {
		errs = append(errs, err)
	}
	if err := g.vs.DeletePort(ctx, g.cfg.Bridge, names.Port); err != nil {
		errs = append(errs, err)
	}
	if err := g.nb.DeleteLogicalPort(ctx, vpn, names.LSP); err != nil && !errors.Is(err, ovs.ErrNotFound) {
		errs = append(errs, err)
	}
	if err := g.ipam.Release(ctx, vpn, addrOwner(vpn)); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove management port of %s: %w", vpn, err)
	}
	return nil
}

// Sweep removes this node's management ports of every VPN not in keep (VPNs deleted
// while the controller was down).
func (g *Gateway) Sweep(ctx context.Context, keep map[string]bool) error {
	ports, err := g.vs.ListOwnedPorts(ctx)
	if err != nil {
		return fmt.Errorf("sweep management ports: %w", err)
	}
	var errs []error
	for _, p := range ports {
		if p.Owner.Role == Role && p.Owner.Node == g.cfg.Node && !keep[p.Owner.Network] {
			errs = append(errs, g.Remove(ctx, p.Owner.Network))
		}
	}
	return errors.Join(errs...)
}
