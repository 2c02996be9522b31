package vpn

import (
	"errors"
	"fmt"

	"github.com/sdncni/sdncni/pkg/attach"
)

var (
	// ErrConflict: the namespace is claimed by more than one VPN; new pods wait (CNI code
	// 11) until an operator resolves it.
	ErrConflict = fmt.Errorf("namespace claimed by more than one VPN: %w", attach.ErrNetworkNotReady)
	// ErrNotReady: the VPN exists but is not realised yet (no id, being deleted, or an
	// unsupported address family).
	ErrNotReady = fmt.Errorf("vpn not ready: %w", attach.ErrNetworkNotReady)
	// ErrIDConflict: the VPN's status.vpnID is another VPN's (IDHolders); the node serves
	// it no new pods until the cluster role has put its own id back (CNI code 11).
	ErrIDConflict = fmt.Errorf("vpn id carried by another vpn: %w", ErrNotReady)
	// ErrBlockLimit: the VPN holds as many blocks as one VPN may (Limits.BlocksPerVPN);
	// the pod waits (CNI code 11) until one is released or the bound is raised.
	ErrBlockLimit = fmt.Errorf("vpn at its bound of address blocks: %w", attach.ErrNetworkNotReady)
	// ErrNoBlocks: every block of the VPN's CIDR is claimed.
	ErrNoBlocks = errors.New("no free address block in the vpn")
)
