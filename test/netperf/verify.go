package main

import (
	"context"
	"fmt"
)

// Paths a measurement's traffic can take, as the counters tell them apart.
const (
	pathOVS         = "ovs"          // same node, through OVS's br-int
	pathFast        = "fast-path"    // same node, around OVS (eBPF fast path)
	pathGeneve      = "geneve"       // across nodes, through OVS and its userspace Geneve over br-phy/ul0
	pathKernelVXLAN = "kernel-vxlan" // across nodes, through a kernel VXLAN device, around OVS
	pathVXLANBridge = "vxlan-bridge" // across nodes, through the harness's flannel-style VXLAN device
	pathUnderlay    = "underlay"     // the kernel underlay link itself
)

// linkVerifier checks that one link carried at least the bytes moved.
type linkVerifier struct {
	netns, link, path string
}

func (v *linkVerifier) snapshot(ctx context.Context) (snapshot, error) {
	c, err := linkCounters(v.netns, v.link)
	if err != nil {
		return nil, err
	}
	return snapshot{"link": c}, nil
}

func (v *linkVerifier) check(before, after snapshot, moved int64) (verdict, error) {
	n := after["link"].bytesSince(before["link"])
	d := verdict{Desc: fmt.Sprintf("%s rx+tx %d B while %d B were moved", v.link, n, moved)}
	if n < moved {
		return d, fmt.Errorf("%s claimed but %s carried less than was moved: %s", v.path, v.link, d.Desc)
	}
	d.Path = v.path
	return d, nil
}

// crossVerifier tells which path carried traffic from node 1 to node 2, from node 1's
// counters: OVS's br-int ports, OVS's underlay veth (ul0, where its Geneve packets
// leave) and every kernel VXLAN device but the vxlan-bridge case's. want, when not "",
// is the path the case claims; any other is a failure. With want "" the case reports
// whichever known path it found.
type crossVerifier struct {
	ovs          *ovsVerifier
	excludeVXLAN []string
	want         string
}

func (v *crossVerifier) snapshot(ctx context.Context) (snapshot, error) {
	s, err := v.ovs.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	if s[ovsULLink], err = linkCounters(nodeNetNS, ovsULLink); err != nil {
		return nil, err
	}
	if s["vxlan"], err = vxlanCounters(nodeNetNS, v.excludeVXLAN...); err != nil {
		return nil, err
	}
	return s, nil
}

func (v *crossVerifier) check(before, after snapshot, moved int64) (verdict, error) {
	d := judgeCrossPath(before, after, moved)
	switch {
	case d.Path == "":
		return d, fmt.Errorf("no known path carried the traffic: %s", d.Desc)
	case v.want != "" && d.Path != v.want:
		return d, fmt.Errorf("%s claimed but the traffic took %s: %s", v.want, d.Path, d.Desc)
	}
	return d, nil
}

// judgeCrossPath classifies a cross-node measurement: kernel VXLAN when VXLAN devices
// carried the bytes and OVS saw next to nothing; Geneve when OVS's ports received them
// and its underlay veth carried them; "" otherwise.
func judgeCrossPath(before, after snapshot, moved int64) verdict {
	ovsRx := after["ovs"].RxBytes - before["ovs"].RxBytes
	ovsAll := after["ovs"].bytesSince(before["ovs"])
	ul := after[ovsULLink].bytesSince(before[ovsULLink])
	vx := after["vxlan"].bytesSince(before["vxlan"])
	d := verdict{Desc: fmt.Sprintf("OVS br-int ports rx %d B, tx %d B; OVS underlay %s %d B; kernel VXLAN devices %d B; while %d B were moved",
		ovsRx, ovsAll-ovsRx, ovsULLink, ul, vx, moved)}
	switch {
	case vx >= moved && float64(ovsAll) <= fastPathSlack*float64(moved):
		d.Path = pathKernelVXLAN
	case ovsRx >= moved && ul >= moved:
		d.Path = pathGeneve
	}
	return d
}
