//go:build linux

package crossnode

import (
	"errors"
	"fmt"

	"github.com/safchain/ethtool"
	"github.com/vishvananda/netlink"
)

// VXLANOverhead is what VXLAN adds to a pod frame on an IPv4 underlay: outer IPv4 20 +
// UDP 8 + VXLAN 8 + inner Ethernet 14.
const VXLANOverhead = 50

// DefaultPort is the IANA VXLAN port.
const DefaultPort = 4789

// EnsureDevice makes name a collect-metadata ("external") VXLAN device on UDP port port
// with the given MTU and GRO on, up, in the calling thread's network namespace: it
// creates it when missing and fixes its MTU and GRO. An existing link of that name that
// is not such a device is an error (never replaced: it may be someone else's).
//
// GRO stays on even where OVS cannot tunnel offloaded packets (OVS 3.1's userspace
// datapath): a merged packet sent back for OVS (docs/datapath.md) is segmented by the
// kernel when it is transmitted on the pod's OVS port, whose tx offload is off there.
func EnsureDevice(name string, port, mtu int) (*netlink.Vxlan, error) {
	l, err := netlink.LinkByName(name)
	var nf netlink.LinkNotFoundError
	switch {
	case errors.As(err, &nf):
		vx := &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: name, MTU: mtu}, FlowBased: true, Port: port}
		if err := netlink.LinkAdd(vx); err != nil {
			return nil, fmt.Errorf("add vxlan device %s: %w", name, err)
		}
		if l, err = netlink.LinkByName(name); err != nil {
			return nil, fmt.Errorf("vxlan device %s: %w", name, err)
		}
	case err != nil:
		return nil, fmt.Errorf("vxlan device %s: %w", name, err)
	}
	vx, ok := l.(*netlink.Vxlan)
	if !ok || !vx.FlowBased || vx.Port != port {
		return nil, fmt.Errorf("link %s exists and is not a collect-metadata vxlan device on port %d", name, port)
	}
	if mtu > 0 && vx.MTU != mtu {
		if err := netlink.LinkSetMTU(vx, mtu); err != nil {
			return nil, fmt.Errorf("set mtu of %s: %w", name, err)
		}
	}
	if err := setGRO(name, true); err != nil {
		return nil, err
	}
	if err := netlink.LinkSetUp(vx); err != nil {
		return nil, fmt.Errorf("set %s up: %w", name, err)
	}
	return vx, nil
}

// setGRO switches generic receive offload of name on or off, as ethtool -K name gro does.
func setGRO(name string, on bool) error {
	e, err := ethtool.NewEthtool()
	if err != nil {
		return fmt.Errorf("open ethtool socket: %w", err)
	}
	defer e.Close()
	active, err := e.Features(name)
	if err != nil {
		return fmt.Errorf("read features of %s: %w", name, err)
	}
	if active["rx-gro"] == on {
		return nil
	}
	if err := e.Change(name, map[string]bool{"rx-gro": on}); err != nil {
		return fmt.Errorf("set gro %t on %s: %w", on, name, err)
	}
	return nil
}

// DeleteDevice removes the VXLAN device name; gone already is fine.
func DeleteDevice(name string) error {
	l, err := netlink.LinkByName(name)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("vxlan device %s: %w", name, err)
	}
	if _, ok := l.(*netlink.Vxlan); !ok {
		return fmt.Errorf("link %s is not a vxlan device", name)
	}
	if err := netlink.LinkDel(l); err != nil {
		return fmt.Errorf("delete vxlan device %s: %w", name, err)
	}
	return nil
}
