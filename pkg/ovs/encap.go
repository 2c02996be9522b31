package ovs

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
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
