package ovs

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/sdncni/sdncni/pkg/ovs/model/vswitch"
)

// KeyOVNEncapIP is the Open_vSwitch row's external_ids key where ovn-controller reads the
// node's tunnel endpoint address(es), comma-separated.
const KeyOVNEncapIP = "ovn-encap-ip"

// EncapIP returns this node's OVN tunnel endpoint: external_ids:ovn-encap-ip of the
// Open_vSwitch row (the first address when it lists several). It returns ErrNotFound
// (wrapped) when the key is not set.
func (v *VSwitch) EncapIP(ctx context.Context) (netip.Addr, error) {
	root, err := v.root(ctx)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("read encap ip: %w", err)
	}
	raw := strings.TrimSpace(strings.Split(root.ExternalIDs[KeyOVNEncapIP], ",")[0])
	if raw == "" {
		return netip.Addr{}, fmt.Errorf("read encap ip: external_ids:%s: %w", KeyOVNEncapIP, ErrNotFound)
	}
	a, err := netip.ParseAddr(raw)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("read encap ip: external_ids:%s: %w", KeyOVNEncapIP, err)
	}
	return a.Unmap(), nil
}

// tunnelTypes are the Interface types whose options:remote_ip is a peer's tunnel endpoint.
var tunnelTypes = []string{"geneve", "vxlan", "stt", "gre"}

// TunnelRemotes returns the remote endpoints (options:remote_ip) of every tunnel interface
// on any bridge, sorted and without duplicates: the other nodes ovn-controller made
// Geneve ports to. Flow-based remotes ("flow") and unparsable values are left out.
func (v *VSwitch) TunnelRemotes(ctx context.Context) ([]netip.Addr, error) {
	var ifaces []vswitch.Interface
	err := v.c.WhereCache(func(i *vswitch.Interface) bool { return slices.Contains(tunnelTypes, i.Type) }).List(ctx, &ifaces)
	if err != nil {
		return nil, fmt.Errorf("list tunnel interfaces: %w", err)
	}
	var out []netip.Addr
	for _, i := range ifaces {
		if a, err := netip.ParseAddr(i.Options["remote_ip"]); err == nil {
			out = append(out, a.Unmap())
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out), nil
}
