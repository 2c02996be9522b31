package gateway

import "errors"

// ErrNoBlocks means the node holds no block of the VPN, so it has no management port.
var ErrNoBlocks = errors.New("node holds no block of the vpn")
