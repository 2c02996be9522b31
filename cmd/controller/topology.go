package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/go-logr/logr"
	"github.com/vishvananda/netlink"

	"github.com/sdncni/sdncni/pkg/crossnode"
	"github.com/sdncni/sdncni/pkg/ovs"
)

const (
	// fallbackMTU is the pod MTU when the tunnel's underlay is unknown (no encap IP, a
	// loopback one, or no link of this netns holds it): the single-node default.
	fallbackMTU = 1400
	// geneveOverhead4 is what OVN's Geneve adds to a pod frame on an IPv4 underlay:
	// outer IPv4 20 + UDP 8 + Geneve 8 + OVN's option 8 + inner Ethernet 14.
	geneveOverhead4 = 58
	// geneveOverhead6 is the same on an IPv6 underlay (outer header 40).
	geneveOverhead6 = 78
)

// Values of --tunnel-tx-offload.
const (
	txOffloadAuto = "auto"
	txOffloadOn   = "on"
	txOffloadOff  = "off"
)

// topology is what the node's tunnel looks like, as far as pod interfaces care.
type topology struct {
	EncapIP   netip.Addr // OVN's tunnel endpoint (external_ids:ovn-encap-ip); invalid if unset
	EncapLink string     // the link of this netns that holds EncapIP; "" if none
	EncapMTU  int        // its MTU
	// XNodeMTU is the MTU of the kernel-owned link that holds --cross-node-underlay-ip
	// (the cross-node VXLAN leaves there); 0 without the cross-node path.
	XNodeMTU int
}

// tunnelled reports whether pod traffic may leave this node in a tunnel: the node has
// an encap IP that other nodes can reach (a loopback one cannot be shared, so a node
// using it is alone).
func (t topology) tunnelled() bool { return t.EncapIP.IsValid() && !t.EncapIP.IsLoopback() }

// podMTU is the largest pod MTU whose frames still fit the underlay once encapsulated,
// in Geneve and, with the cross-node path, in VXLAN too (a flow may move between them),
// or fallbackMTU when the underlay is unknown.
func (t topology) podMTU() int {
	if !t.tunnelled() || t.EncapMTU == 0 {
		return fallbackMTU
	}
	overhead := geneveOverhead4
	if t.EncapIP.Is6() {
		overhead = geneveOverhead6
	}
	mtu := t.EncapMTU - overhead
	if t.XNodeMTU > 0 {
		mtu = min(mtu, t.XNodeMTU-crossnode.VXLANOverhead)
	}
	return mtu
}

// linkMTUOf returns the name and MTU of the link of this netns that holds ip.
func linkMTUOf(ip netip.Addr) (string, int, error) {
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return "", 0, fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range addrs {
		if got, ok := netip.AddrFromSlice(a.IP); ok && got.Unmap() == ip {
			l, err := netlink.LinkByIndex(a.LinkIndex)
			if err != nil {
				return "", 0, fmt.Errorf("link of %s: %w", ip, err)
			}
			return l.Attrs().Name, l.Attrs().MTU, nil
		}
	}
	return "", 0, fmt.Errorf("no link of this network namespace holds %s", ip)
}

// txOffloadOff decides --tunnel-tx-offload=auto, the tx offload of the taps into OVS
// (pods keep theirs): off when the userspace datapath (netdev) tunnels pod traffic,
// since OVS 3.1 cannot encapsulate TSO or checksum-pending packets; the kernel then
// segments and checksums at the tap. The kernel datapath segments and checksums before
// encapsulating, so it keeps them on.
func (t topology) txOffloadOff(mode, datapathType string) bool {
	switch mode {
	case txOffloadOn:
		return false
	case txOffloadOff:
		return true
	}
	return datapathType == "netdev" && t.tunnelled()
}

// discoverTopology reads the encap IP from the local Open_vSwitch row and finds the link
// of this network namespace that holds it. Neither being there is not an error.
func discoverTopology(ctx context.Context, vs *ovs.VSwitch) (topology, error) {
	var t topology
	ip, err := vs.EncapIP(ctx)
	if errors.Is(err, ovs.ErrNotFound) {
		return t, nil
	}
	if err != nil {
		return t, err
	}
	t.EncapIP = ip
	if name, mtu, err := linkMTUOf(ip); err == nil {
		t.EncapLink, t.EncapMTU = name, mtu
	}
	return t, nil
}

// waitTopology discovers the topology, waiting up to wait for the encap IP to be set:
// decided without it, a tunnelled node would give its pods offloads that the userspace
// datapath cannot tunnel (cross-node TCP then fails) and the default MTU. After wait it
// goes on without (a node that does not tunnel).
func waitTopology(ctx context.Context, vs *ovs.VSwitch, wait time.Duration, log logr.Logger) (topology, error) {
	deadline := time.Now().Add(wait)
	logged := false
	for {
		t, err := discoverTopology(ctx, vs)
		if err != nil || t.EncapIP.IsValid() || !time.Now().Before(deadline) {
			return t, err
		}
		if !logged {
			log.Info("waiting for the tunnel endpoint (external_ids:ovn-encap-ip)", "atMost", wait)
			logged = true
		}
		select {
		case <-ctx.Done():
			return t, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// resolveTopology fills in what the flags left to the topology: the pod MTU (--mtu 0)
// and whether pod interfaces get tx offload off (--tunnel-tx-offload).
func resolveTopology(ctx context.Context, o *options, vs *ovs.VSwitch, log logr.Logger) error {
	t, err := waitTopology(ctx, vs, o.encapWait, log)
	if err != nil {
		return fmt.Errorf("discover tunnel topology: %w", err)
	}
	if o.crossNodeDev != "" {
		name, mtu, err := linkMTUOf(o.crossNodeIP)
		if err != nil {
			return fmt.Errorf("--cross-node-underlay-ip: %w", err)
		}
		if t.EncapLink != "" && name == t.EncapLink {
			log.Info("the cross-node path's underlay link also holds OVS's encap ip; with the userspace datapath its VXLAN would cross ovs-vswitchd", "link", name)
		}
		t.XNodeMTU = mtu
	}
	if o.mtu == 0 {
		o.mtu = t.podMTU()
	}
	o.txOffloadOff = t.txOffloadOff(o.tunnelTxOffload, o.datapathType)
	log.Info("tunnel topology", "encapIP", t.EncapIP, "encapLink", t.EncapLink, "encapMTU", t.EncapMTU, "crossNodeLinkMTU", t.XNodeMTU,
		"podMTU", o.mtu, "ovsPortTxOffload", !o.txOffloadOff)
	if t.tunnelled() && t.EncapMTU != 0 && o.mtu > t.podMTU() {
		log.Info("pod MTU exceeds what the tunnel carries; cross-node packets that large will be dropped",
			"mtu", o.mtu, "max", t.podMTU())
	}
	return nil
}
