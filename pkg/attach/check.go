package attach

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/sdncni/sdncni/pkg/datapath"
	"github.com/sdncni/sdncni/pkg/ipam"
	"github.com/sdncni/sdncni/pkg/podnet"
)

// Check verifies every piece of an attachment and returns an error naming the first
// thing that is missing or wrong: address, pod interface (MAC, address, route), host
// veth, OVS port and its binding, OVN port, fast-path programs and entries.
func (m *Manager) Check(ctx context.Context, r Request) error {
	defer m.locks.lock(r.ContainerID)()
	names := NamesFor(r.Key)
	allocs, err := m.deps.IPAM.Get(ctx, ipam.Owner{ContainerID: r.ContainerID, IfName: r.IfName})
	if err != nil {
		return fmt.Errorf("look up address: %w", err)
	}
	if len(allocs) == 0 {
		return fmt.Errorf("no address allocated for container %s ifname %s", r.ContainerID, r.IfName)
	}
	n, ok := m.deps.Networks.ByName(allocs[0].Pool)
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknownNetwork, allocs[0].Pool)
	}
	addr := netip.PrefixFrom(allocs[0].Addr.Addr(), n.Prefix.Bits())
	mac := MACFor(addr.Addr())
	if err := podnet.Check(ctx, podnet.Config{NetNS: r.Netns, IfName: r.IfName, HostIfName: names.HostIf,
		MAC: mac, MTU: n.MTU, Addr: addr, Gateway: n.Gateway}); err != nil {
		return err
	}
	port, err := m.deps.VSwitch.GetPort(ctx, names.OVSIf)
	if err != nil {
		return fmt.Errorf("ovs port %s: %w", names.OVSIf, err)
	}
	if port.IfaceID != names.LSP {
		return fmt.Errorf("ovs port %s is bound to %q, want %q", names.OVSIf, port.IfaceID, names.LSP)
	}
	lsp, err := m.deps.Northbound.GetLogicalPort(ctx, names.LSP)
	if err != nil {
		return fmt.Errorf("ovn logical port %s: %w", names.LSP, err)
	}
	if lsp.MAC.String() != mac.String() || !slices.Contains(lsp.IPs, addr.Addr()) {
		return fmt.Errorf("ovn logical port %s has addresses %s %v, want %s %s", names.LSP, lsp.MAC, lsp.IPs, mac, addr.Addr())
	}
	host, err := podnet.HostLink(names.HostIf)
	if err != nil {
		return err
	}
	ovsLink, err := podnet.HostLinkAny(names.OVSIf)
	if err != nil {
		return err
	}
	if ovsLink.Attrs().Flags&net.FlagUp == 0 {
		return fmt.Errorf("ovs port %s is down: the pod's traffic cannot reach OVS", names.OVSIf)
	}
	ep := datapath.Endpoint{VPN: n.ID, HostIfIndex: host.Attrs().Index, OVSIfIndex: ovsLink.Attrs().Index,
		HostIfName: names.HostIf, OVSIfName: names.OVSIf, MAC: mac, IP: addr.Addr(), FastPath: m.podFastPath(ctx, r.PodNamespace, r.PodName)}
	if err := m.deps.Datapath.Check(ctx, ep); err != nil {
		return fmt.Errorf("datapath: %w", err)
	}
	return nil
}
