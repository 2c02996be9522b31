package gateway

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/sdncni/sdncni/pkg/attach"
	"github.com/sdncni/sdncni/pkg/podnet"
)

// configureLink waits for ovs-vswitchd to create the port's tap, then gives it mac, ip
// as /32, IPv6 off, mtu, up, and a route to each of vpn's blocks (vpn.Ranges) through it
// with ip as source — to the whole CIDR for Config.ClusterVPN; routes through it to
// anything else are removed. Routing table
// SharedMark(vpn.ID) gets the route to vpn's whole CIDR through it: the way of
// connections to vpn's shared Services (SetShared).
func (g *Gateway) configureLink(ctx context.Context, name string, mac net.HardwareAddr, ip netip.Addr, vpn attach.Network) error {
	mtu, blocks := vpn.MTU, vpn.Ranges
	if vpn.Name == g.cfg.ClusterVPN && vpn.Prefix.IsValid() {
		// The default VPN: the node reaches its pods on every node (the upstream
		// node-pod conformance checks); OVN carries them over the tunnel. Blocks of
		// other VPNs on this node are more specific and still win for this node's pods.
		blocks = []netip.Prefix{vpn.Prefix}
	}
	l, err := g.waitLink(ctx, name)
	if err != nil {
		return err
	}
	if err := setSysctl(fmt.Sprintf("net/ipv6/conf/%s/disable_ipv6", name), "1"); err != nil {
		return err
	}
	// Replies of shared Services arrive here from endpoint addresses the main table routes
	// elsewhere (overlapping CIDRs) or not at all (other nodes' blocks). The kernel filters
	// by max(all, this port): with "all" off we keep the port off (no check); with a strict
	// or loose "all" the port gets loose (2), which passes with any route to the source —
	// the node's default route.
	rpf := "0"
	if all, err := os.ReadFile("/proc/sys/net/ipv4/conf/all/rp_filter"); err != nil {
		return fmt.Errorf("read rp_filter: %w", err)
	} else if strings.TrimSpace(string(all)) != "0" {
		rpf = "2"
	}
	if err := setSysctl(fmt.Sprintf("net/ipv4/conf/%s/rp_filter", name), rpf); err != nil {
		return err
	}
	if !bytes.Equal(l.Attrs().HardwareAddr, mac) {
		if err := netlink.LinkSetHardwareAddr(l, mac); err != nil {
			return fmt.Errorf("set mac of %s: %w", name, err)
		}
	}
	if g.cfg.TxOffloadOff {
		if err := podnet.DisableTxOffload(name); err != nil {
			return err
		}
	}
	if mtu > 0 && l.Attrs().MTU != mtu {
		if err := netlink.LinkSetMTU(l, mtu); err != nil {
			return fmt.Errorf("set mtu of %s: %w", name, err)
		}
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(32, 32)}}
	if err := netlink.AddrReplace(l, addr); err != nil {
		return fmt.Errorf("set address of %s: %w", name, err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	want := map[string]bool{}
	for _, b := range blocks {
		b = b.Masked()
		want[b.String()] = true
		r := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: &net.IPNet{IP: b.Addr().AsSlice(), Mask: net.CIDRMask(b.Bits(), 32)},
			Src: ip.AsSlice(), Scope: netlink.SCOPE_LINK}
		if err := netlink.RouteReplace(r); err != nil {
			return fmt.Errorf("route %s via %s: %w", b, name, err)
		}
	}
	if vpn.ID > 0 && vpn.ID <= maxSharedVPNID && vpn.Prefix.IsValid() {
		p := vpn.Prefix.Masked()
		r := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)},
			Src: ip.AsSlice(), Scope: netlink.SCOPE_LINK, Table: int(SharedMark(vpn.ID))}
		if err := netlink.RouteReplace(r); err != nil {
			return fmt.Errorf("route %s via %s in table %#x: %w", p, name, r.Table, err)
		}
	}
	have, err := netlink.RouteList(l, unix.AF_INET)
	if err != nil {
		return fmt.Errorf("list routes of %s: %w", name, err)
	}
	for _, r := range have {
		if r.Dst == nil || r.Protocol == unix.RTPROT_KERNEL || want[r.Dst.String()] {
			continue
		}
		if err := netlink.RouteDel(&r); err != nil {
			return fmt.Errorf("remove stale route %s via %s: %w", r.Dst, name, err)
		}
	}
	return nil
}

// waitLink waits until ovs-vswitchd has created tap name and attached it (ofport > 0).
func (g *Gateway) waitLink(ctx context.Context, name string) (netlink.Link, error) {
	wctx, cancel := context.WithTimeout(ctx, g.cfg.LinkWait)
	defer cancel()
	for {
		if l, err := netlink.LinkByName(name); err == nil {
			if p, perr := g.vs.GetPort(wctx, name); perr == nil && p.OFPort > 0 {
				return l, nil
			}
		}
		select {
		case <-wctx.Done():
			return nil, fmt.Errorf("wait for ovs-vswitchd to add %s: %w", name, wctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func setSysctl(key, value string) error {
	if err := os.WriteFile("/proc/sys/"+key, []byte(value), 0o644); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", key, value, err)
	}
	return nil
}
