package podnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ip"
	"github.com/containernetworking/plugins/pkg/ipam"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/utils/sysctl"
	"github.com/vishvananda/netlink"
)

// ErrIfaceExists is returned by Setup when the pod already has an interface of that name.
var ErrIfaceExists = errors.New("interface already exists in the pod")

// Config describes one pod interface.
type Config struct {
	NetNS      string // path of the pod's network namespace
	IfName     string // CNI_IFNAME, the pod side
	HostIfName string // host side, in the node namespace (≤ 15 chars)
	MAC        net.HardwareAddr
	MTU        int
	Addr       netip.Prefix // pod address with the network's prefix length
	Gateway    netip.Addr
}

// Link is what Setup created.
type Link struct {
	HostIndex int
	HostMAC   net.HardwareAddr
	PodIndex  int
}

// Setup creates the veth pair and configures the pod side. On failure it removes what
// it created. It returns ErrIfaceExists (wrapped) when the pod already has c.IfName.
func Setup(ctx context.Context, c Config) (Link, error) {
	if err := ctx.Err(); err != nil {
		return Link{}, err
	}
	hostNS, err := ns.GetCurrentNS()
	if err != nil {
		return Link{}, fmt.Errorf("open node netns: %w", err)
	}
	defer hostNS.Close()
	podNS, err := ns.GetNS(c.NetNS)
	if err != nil {
		return Link{}, fmt.Errorf("open pod netns %s: %w", c.NetNS, err)
	}
	defer podNS.Close()

	var link Link
	err = podNS.Do(func(ns.NetNS) error {
		if _, err := netlink.LinkByName(c.IfName); err == nil {
			return fmt.Errorf("%w: %s", ErrIfaceExists, c.IfName)
		}
		hostIf, podIf, err := ip.SetupVethWithName(c.IfName, c.HostIfName, c.MTU, c.MAC.String(), hostNS)
		if err != nil {
			return fmt.Errorf("create veth %s/%s: %w", c.IfName, c.HostIfName, err)
		}
		link = Link{HostIndex: hostIf.Index, HostMAC: hostIf.HardwareAddr, PodIndex: podIf.Index}
		if err := configurePod(c, podIf.Index); err != nil {
			_ = ip.DelLinkByName(c.IfName)
			return err
		}
		return nil
	})
	if err != nil {
		return Link{}, err
	}
	// The node must not speak IPv6 (RS, DAD) into the pod through the host side.
	if _, err := sysctl.Sysctl(fmt.Sprintf("net/ipv6/conf/%s/disable_ipv6", c.HostIfName), "1"); err != nil {
		_ = Teardown(ctx, c.HostIfName)
		return Link{}, fmt.Errorf("disable ipv6 on %s: %w", c.HostIfName, err)
	}
	return link, nil
}

func configurePod(c Config, index int) error {
	ifIdx := 0
	res := &current.Result{
		Interfaces: []*current.Interface{{Name: c.IfName, Mac: c.MAC.String()}},
		IPs: []*current.IPConfig{{
			Interface: &ifIdx,
			Address:   net.IPNet{IP: c.Addr.Addr().AsSlice(), Mask: net.CIDRMask(c.Addr.Bits(), c.Addr.Addr().BitLen())},
			Gateway:   c.Gateway.AsSlice(),
		}},
		Routes: []*types.Route{DefaultRoute(c.Gateway)},
	}
	if err := ipam.ConfigureIface(c.IfName, res); err != nil {
		return fmt.Errorf("configure %s: %w", c.IfName, err)
	}
	return nil
}

// DefaultRoute is the pod's route to everything off its network, via the gateway.
func DefaultRoute(gw netip.Addr) *types.Route {
	dst := net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)}
	if gw.Is6() {
		dst = net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
	}
	return &types.Route{Dst: dst, GW: gw.AsSlice()}
}

// Teardown deletes the host side of the pair (the kernel deletes the pod side with it).
// A missing link is not an error.
func Teardown(ctx context.Context, hostIfName string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l, err := netlink.LinkByName(hostIfName)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("find %s: %w", hostIfName, err)
	}
	if err := netlink.LinkDel(l); err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("delete %s: %w", hostIfName, err)
	}
	return nil
}

// HostLink returns the host side's index, or an error naming what is missing.
func HostLink(hostIfName string) (netlink.Link, error) {
	l, err := netlink.LinkByName(hostIfName)
	if err != nil {
		return nil, fmt.Errorf("host veth %s: %w", hostIfName, err)
	}
	if _, ok := l.(*netlink.Veth); !ok {
		return nil, fmt.Errorf("host veth %s is a %s, not a veth", hostIfName, l.Type())
	}
	return l, nil
}

// HostLinkAny returns a link of the node namespace by name, whatever its type.
func HostLinkAny(name string) (netlink.Link, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("link %s: %w", name, err)
	}
	return l, nil
}
