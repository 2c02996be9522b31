package ipam

import (
	"net/netip"
	"time"
)

// Range is a block of addresses inside a subnet.
//
// Start and End are optional and inclusive; they default to the first and
// last address of Subnet. The network address, the IPv4 broadcast address and
// Gateway are never allocated even when Start/End include them, so a per-node
// block of a larger CIDR is expressed as Subnet = the whole CIDR with
// Start/End bounding the block.
type Range struct {
	Subnet  netip.Prefix
	Gateway netip.Addr // optional; reserved, never allocated
	Start   netip.Addr // optional
	End     netip.Addr // optional
}

// Pool is a named set of ranges, all of one address family, that do not
// overlap. Name identifies the network (or VPN) in the store; callers must
// pass the same Name for the same network every time. Ranges are tried in
// order.
type Pool struct {
	Name   string
	Ranges []Range
}

// Owner identifies the holder of an allocation. ContainerID and IfName are
// the key; the pod fields are informational and help operators read the store.
type Owner struct {
	ContainerID  string
	IfName       string
	PodNamespace string
	PodName      string
}

// Allocation is an address held by an owner in a pool.
type Allocation struct {
	Pool    string
	Addr    netip.Prefix // the address with its subnet's prefix length
	Gateway netip.Addr   // the gateway of the range the address came from; may be zero
	Owner   Owner
	Created time.Time
}

func (o Owner) key() ownerKey { return ownerKey{o.ContainerID, o.IfName} }

type ownerKey struct{ containerID, ifName string }
