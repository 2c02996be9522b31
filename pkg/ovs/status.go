package ovs

import (
	"context"
	"fmt"
)

// Connected reports whether the client is connected to the Open_vSwitch database now
// (it reconnects by itself; this is for readiness reporting).
func (v *VSwitch) Connected() bool { return v.c.Connected() }

// Connected reports whether the client is connected to the Northbound database now.
func (n *Northbound) Connected() bool { return n.c.Connected() }

// OVNRemote returns the OVN Southbound endpoint the node's ovn-controller uses
// (external_ids:ovn-remote of the Open_vSwitch row), ErrNotFound when it is not set.
func (v *VSwitch) OVNRemote(ctx context.Context) (string, error) {
	r, err := v.root(ctx)
	if err != nil {
		return "", err
	}
	remote := r.ExternalIDs["ovn-remote"]
	if remote == "" {
		return "", fmt.Errorf("external_ids:ovn-remote: %w", ErrNotFound)
	}
	return remote, nil
}
