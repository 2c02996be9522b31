package attach

import (
	"context"
	"net/netip"

	"github.com/sdncni/sdncni/pkg/datapath"
	"github.com/sdncni/sdncni/pkg/ipam"
	"github.com/sdncni/sdncni/pkg/ovs"
)

// What the Manager needs of its collaborators; the real ones are *ovs.VSwitch,
// *ovs.Northbound, *ipam.Store and *datapath.Datapath.

type vswitch interface {
	AddPort(ctx context.Context, bridge string, p ovs.Port) error
	DeletePort(ctx context.Context, bridge, name string) error
	GetPort(ctx context.Context, name string) (ovs.PortInfo, error)
	ListOwnedPorts(ctx context.Context) ([]ovs.PortInfo, error)
	WaitOVNInstalled(ctx context.Context, name string) error
}

type northbound interface {
	EnsureNetwork(ctx context.Context, n ovs.Network) error
	AddLogicalPort(ctx context.Context, network string, lp ovs.LogicalPort) error
	DeleteLogicalPort(ctx context.Context, network, name string) error
	GetLogicalPort(ctx context.Context, name string) (ovs.LogicalPortInfo, error)
	ListOwnedLogicalPorts(ctx context.Context) ([]ovs.LogicalPortInfo, error)
}

type addressStore interface {
	Allocate(ctx context.Context, p ipam.Pool, o ipam.Owner) (ipam.Allocation, error)
	Reserve(ctx context.Context, p ipam.Pool, o ipam.Owner, addr netip.Addr) (ipam.Allocation, error)
	ReleaseOwner(ctx context.Context, o ipam.Owner) ([]ipam.Allocation, error)
	Get(ctx context.Context, o ipam.Owner) ([]ipam.Allocation, error)
	List(ctx context.Context) ([]ipam.Allocation, error)
}

type fastPath interface {
	Attach(ctx context.Context, ep datapath.Endpoint) error
	Detach(ctx context.Context, ep datapath.Endpoint) error
	Check(ctx context.Context, ep datapath.Endpoint) error
	Endpoints(ctx context.Context) ([]datapath.Endpoint, error)
	Sweep(ctx context.Context, live map[string]bool) (datapath.SweepReport, error)
}

var (
	_ vswitch      = (*ovs.VSwitch)(nil)
	_ northbound   = (*ovs.Northbound)(nil)
	_ addressStore = (*ipam.Store)(nil)
	_ fastPath     = (*datapath.Datapath)(nil)
)
