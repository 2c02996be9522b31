package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
)

// The two-node topology every case but veth runs on: two node namespaces joined by an
// underlay, a Linux bridge in a namespace of its own, as hack/dev-env.sh --underlay
// builds it and as a multi-node cluster has it.
//
//	node netns 1 (sdncni-np-node)    underlay netns (sdncni-np-ul)    node netns 2 (sdncni-np-node2)
//	 br-phy (OVS, encap IP) ul0 ---- u-<cksum>  br-ul  u-<cksum> ---- ul0 br-phy (OVS, encap IP)
//	 sdncni-np-ul (kernel) -------- sdncni-np-u1      sdncni-np-u2 -- sdncni-np-ul (kernel)
//
// The OVS side (ul0 in the netdev bridge br-phy, Geneve endpoints) comes from dev-env.sh
// when an sdncni case runs. The kernel side is the harness's own: one veth per node
// that the kernel owns end to end, with an address in the node namespace. The underlay
// case measures it, and the vxlan-bridge case tunnels over it: the same kind of link a
// kernel tunnel of sdncni uses, and not OVS's userspace br-phy.
const (
	node2NetNS    = namePrefix + "-node2"
	underlayNetNS = namePrefix + "-ul"
	// ulBridge is the Linux bridge in the underlay netns; dev-env.sh's UL_BRIDGE, so the
	// OVS underlay veths and ours share one segment.
	ulBridge = "br-ul"
	// kernelULLink is each node's end of its kernel-owned underlay veth.
	kernelULLink = namePrefix + "-ul"
	// ovsULLink is dev-env.sh's UL_NODE_IF: the node's veth in OVS's br-phy.
	ovsULLink = "ul0"
)

// nodeNetNSes are the two nodes in order; node 1 holds the same-node cases and every
// cross-node client.
var nodeNetNSes = [2]string{nodeNetNS, node2NetNS}

// Underlay addresses. The encap IPs sit on OVS's br-phy; the kernel link's addresses are
// a subnet of their own on the same segment.
var (
	encapCIDRs    = [2]string{"100.65.0.1/24", "100.65.0.2/24"}
	kernelULCIDRs = [2]string{"100.66.0.1/24", "100.66.0.2/24"}
	kernelULPeers = [2]string{namePrefix + "-u1", namePrefix + "-u2"}
)

// topology is the two node namespaces and their kernel underlay, created once per run.
type topology struct {
	up  bool
	mtu int // of the kernel underlay link (OVS's ul0 keeps the veth default, 1500)
}

// setUp creates the node and underlay namespaces, the underlay bridge and the kernel
// underlay veths, registering their removal first on the cleanup stack (so it runs after
// dev-env.sh down, which leaves namespaces it did not create in place).
func (t *topology) setUp(ctx context.Context, cleanup *cleanupStack) error {
	cleanup.push("delete topology namespaces", func(ctx context.Context) error {
		var errs []error
		for _, n := range []string{underlayNetNS, node2NetNS, nodeNetNS} {
			errs = append(errs, delNetNS(ctx, n))
		}
		return errors.Join(errs...)
	})
	for _, n := range []string{nodeNetNS, node2NetNS, underlayNetNS} {
		if _, err := addNetNS(ctx, n); err != nil {
			return err
		}
		if err := ipIn(ctx, n, "link", "set", "lo", "up"); err != nil {
			return err
		}
	}
	if err := ipIn(ctx, underlayNetNS, "link", "add", ulBridge, "type", "bridge"); err != nil {
		return err
	}
	if err := ipIn(ctx, underlayNetNS, "link", "set", ulBridge, "up"); err != nil {
		return err
	}
	for i, node := range nodeNetNSes {
		mtu := fmt.Sprint(t.mtu)
		steps := [][]string{
			{node, "link", "add", kernelULLink, "mtu", mtu, "type", "veth", "peer", "name", kernelULPeers[i], "mtu", mtu, "netns", underlayNetNS},
			{underlayNetNS, "link", "set", kernelULPeers[i], "master", ulBridge, "up"},
			{node, "addr", "add", kernelULCIDRs[i], "dev", kernelULLink},
			{node, "link", "set", kernelULLink, "up"},
		}
		for _, s := range steps {
			if err := ipIn(ctx, s[0], s[1:]...); err != nil {
				return err
			}
		}
	}
	t.up = true
	return nil
}

// kernelULIP is node i's address on its kernel underlay link.
func kernelULIP(i int) net.IP {
	ip, _, _ := net.ParseCIDR(kernelULCIDRs[i])
	return ip.To4()
}

// ipIn runs ip(8) in the named namespace.
func ipIn(ctx context.Context, netns string, args ...string) error {
	out, err := inNetNS(ctx, netnsPath(netns), "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s in %s: %w: %s", strings.Join(args, " "), netns, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// sysctlIn sets a sysctl in the named namespace.
func sysctlIn(ctx context.Context, netns, kv string) error {
	out, err := inNetNS(ctx, netnsPath(netns), "sysctl", "-qw", kv).CombinedOutput()
	if err != nil {
		return fmt.Errorf("sysctl %s in %s: %w: %s", kv, netns, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// linkCounters reads a link's byte and packet totals in the named namespace.
func linkCounters(netns, name string) (counters, error) {
	var c counters
	err := ns.WithNetNSPath(netnsPath(netns), func(ns.NetNS) error {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return fmt.Errorf("find %s in %s: %w", name, netns, err)
		}
		c = statsCounters(l.Attrs().Statistics)
		return nil
	})
	return c, err
}

// vxlanCounters sums the counters of every VXLAN link in the named namespace but the
// excluded ones.
func vxlanCounters(netns string, exclude ...string) (counters, error) {
	var sum counters
	err := ns.WithNetNSPath(netnsPath(netns), func(ns.NetNS) error {
		links, err := netlink.LinkList()
		if err != nil {
			return fmt.Errorf("list links in %s: %w", netns, err)
		}
		for _, l := range links {
			if l.Type() != "vxlan" || slices.Contains(exclude, l.Attrs().Name) {
				continue
			}
			sum = sum.add(statsCounters(l.Attrs().Statistics))
		}
		return nil
	})
	return sum, err
}

func statsCounters(s *netlink.LinkStatistics) counters {
	if s == nil {
		return counters{}
	}
	return counters{RxBytes: int64(s.RxBytes), TxBytes: int64(s.TxBytes), RxPackets: int64(s.RxPackets), TxPackets: int64(s.TxPackets)}
}
