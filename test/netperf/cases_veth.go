package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
)

// vethCase joins the two pods with one veth pair and no plugin: the physical limit.
type vethCase struct{ mtu int }

var vethAddrs = [2]string{"10.98.0.1/24", "10.98.0.2/24"}

func (c *vethCase) Name() string                       { return caseVeth }
func (c *vethCase) Setup(ctx context.Context) error    { return nil }
func (c *vethCase) Teardown(ctx context.Context) error { return c.DelPods(ctx) }
func (c *vethCase) Verifier() verifier                 { return nil }

func (c *vethCase) Info(ctx context.Context) map[string]string {
	return map[string]string{"datapath": "veth pair between the pod namespaces, no bridge"}
}

func (c *vethCase) AddDel(ctx context.Context, i int) (time.Duration, time.Duration, error) {
	return 0, 0, errors.ErrUnsupported
}

func (c *vethCase) AddPods(ctx context.Context, round int) (pair podPair, took []time.Duration, err error) {
	names := [2]string{podNetNSName(caseVeth, "a"), podNetNSName(caseVeth, "b")}
	defer func() {
		if err != nil {
			_ = c.DelPods(context.WithoutCancel(ctx))
		}
	}()
	var paths [2]string
	for i, n := range names {
		if paths[i], err = addNetNS(ctx, n); err != nil {
			return pair, nil, err
		}
	}
	nsA, err := ns.GetNS(paths[0])
	if err != nil {
		return pair, nil, fmt.Errorf("open netns: %w", err)
	}
	defer nsA.Close()
	nsB, err := ns.GetNS(paths[1])
	if err != nil {
		return pair, nil, fmt.Errorf("open netns: %w", err)
	}
	defer nsB.Close()

	start := time.Now()
	err = nsA.Do(func(ns.NetNS) error {
		veth := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: "eth0", MTU: c.mtu},
			PeerName:      "eth0",
			PeerNamespace: netlink.NsFd(int(nsB.Fd())),
		}
		if err := netlink.LinkAdd(veth); err != nil {
			return fmt.Errorf("add veth: %w", err)
		}
		return configureLink("eth0", vethAddrs[0])
	})
	if err == nil {
		err = nsB.Do(func(ns.NetNS) error { return configureLink("eth0", vethAddrs[1]) })
	}
	if err != nil {
		return pair, nil, err
	}
	took = []time.Duration{time.Since(start)}
	ipA, _, _ := net.ParseCIDR(vethAddrs[0])
	ipB, _, _ := net.ParseCIDR(vethAddrs[1])
	pair.A = pod{Name: "a", NetNS: paths[0], IP: ipA, IfName: "eth0"}
	pair.B = pod{Name: "b", NetNS: paths[1], IP: ipB, IfName: "eth0"}
	return pair, took, nil
}

// configureLink gives a link in the current namespace an address and brings it and lo up.
func configureLink(name, cidr string) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find %s: %w", name, err)
	}
	addr, err := netlink.ParseAddr(cidr)
	if err != nil {
		return fmt.Errorf("parse %s: %w", cidr, err)
	}
	if err := netlink.AddrAdd(link, addr); err != nil {
		return fmt.Errorf("address %s: %w", name, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("up %s: %w", name, err)
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("up lo: %w", err)
	}
	return nil
}

func (c *vethCase) DelPods(ctx context.Context) error {
	var errs []error
	for _, s := range []string{"a", "b"} {
		errs = append(errs, delNetNS(ctx, podNetNSName(caseVeth, s)))
	}
	return errors.Join(errs...)
}
