package podnet

import (
	"context"
	"fmt"
	"net"

	"github.com/containernetworking/plugins/pkg/ip"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
)

// Check verifies that the pair exists and the pod side still has its MAC, address and
// default route. It returns an error naming the first thing that is wrong. Addresses or
// routes added by later chained plugins are tolerated.
func Check(ctx context.Context, c Config) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	host, err := HostLink(c.HostIfName)
	if err != nil {
		return err
	}
	podNS, err := ns.GetNS(c.NetNS)
	if err != nil {
		return fmt.Errorf("pod netns %s: %w", c.NetNS, err)
	}
	defer podNS.Close()
	return podNS.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName(c.IfName)
		if err != nil {
			return fmt.Errorf("pod interface %s: %w", c.IfName, err)
		}
		if _, peer, err := ip.GetVethPeerIfindex(c.IfName); err != nil || peer != host.Attrs().Index {
			return fmt.Errorf("pod interface %s is not paired with host veth %s", c.IfName, c.HostIfName)
		}
		if l.Attrs().HardwareAddr.String() != c.MAC.String() {
			return fmt.Errorf("pod interface %s has MAC %s, want %s", c.IfName, l.Attrs().HardwareAddr, c.MAC)
		}
		addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			return fmt.Errorf("list addresses of %s: %w", c.IfName, err)
		}
		want := net.IPNet{IP: c.Addr.Addr().AsSlice(), Mask: net.CIDRMask(c.Addr.Bits(), c.Addr.Addr().BitLen())}
		found := false
		for _, a := range addrs {
			if a.IPNet != nil && a.IPNet.String() == want.String() {
				found = true
			}
		}
		if !found {
			return fmt.Errorf("pod interface %s lacks address %s", c.IfName, c.Addr)
		}
		routes, err := netlink.RouteList(l, netlink.FAMILY_ALL)
		if err != nil {
			return fmt.Errorf("list routes of %s: %w", c.IfName, err)
		}
		for _, r := range routes {
			if (r.Dst == nil || r.Dst.IP.IsUnspecified()) && r.Gw != nil && r.Gw.Equal(c.Gateway.AsSlice()) {
				return nil
			}
		}
		return fmt.Errorf("pod interface %s lacks default route via %s", c.IfName, c.Gateway)
	})
}
