package attach

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/sdncni/sdncni/pkg/ipam"
)

// Network is one isolated pod network (a VPN): an OVN logical switch behind its own
// logical router, an address pool and datapath settings.
type Network struct {
	Name     string       // OVN name and the ipam pool name
	ID       uint32       // numeric id, the VPN key of the fast-path maps (never 0)
	Prefix   netip.Prefix // the whole network; pods are on-link for it
	Gateway  netip.Addr   // the router port's address; reserved in the pool
	MTU      int
	FastPath bool
	// Ranges are the parts of Prefix this node allocates from (per-node blocks); empty
	// means the whole Prefix.
	Ranges []netip.Prefix
}

// Pool is the ipam pool of n on this node.
func (n Network) Pool() ipam.Pool {
	ranges := n.Ranges
	if len(ranges) == 0 {
		ranges = []netip.Prefix{n.Prefix}
	}
	p := ipam.Pool{Name: n.Name}
	for _, r := range ranges {
		rg := ipam.Range{Subnet: n.Prefix}
		if r != n.Prefix {
			first, last := prefixBounds(r)
			rg.Start, rg.End = first, last
		}
		if n.Prefix.Contains(n.Gateway) {
			rg.Gateway = n.Gateway
		}
		p.Ranges = append(p.Ranges, rg)
	}
	return p
}

// Validate checks that n can be realised.
func (n Network) Validate() error {
	switch {
	case n.Name == "":
		return fmt.Errorf("network has no name")
	case n.ID == 0:
		return fmt.Errorf("network %s: id 0 is reserved", n.Name)
	case !n.Prefix.IsValid() || n.Prefix != n.Prefix.Masked():
		return fmt.Errorf("network %s: invalid prefix %s (must be a network address)", n.Name, n.Prefix)
	case !n.Prefix.Contains(n.Gateway):
		return fmt.Errorf("network %s: gateway %s outside %s", n.Name, n.Gateway, n.Prefix)
	case n.MTU < 576 || n.MTU > 65535:
		return fmt.Errorf("network %s: mtu %d out of range 576-65535", n.Name, n.MTU)
	}
	return nil
}

// prefixBounds returns the first and last address of p.
func prefixBounds(p netip.Prefix) (netip.Addr, netip.Addr) {
	p = p.Masked()
	first := p.Addr()
	b := first.AsSlice()
	bits := p.Bits()
	for i := range b {
		for j := 7; j >= 0; j-- {
			if i*8+(7-j) >= bits {
				b[i] |= 1 << j
			}
		}
	}
	last, _ := netip.AddrFromSlice(b)
	return first, last
}

// Networks tells the Manager which network a pod belongs to.
type Networks interface {
	// ForNamespace returns the network of pods in a Kubernetes namespace.
	ForNamespace(ctx context.Context, namespace string) (Network, error)
	// ByName returns a network by name (DEL and CHECK of existing attachments).
	ByName(name string) (Network, bool)
	// All lists every network this node serves.
	All() []Network
}

// Grower is implemented by Networks that can give this node more addresses of a network
// when its ranges are full (a VPN's node claims another block of the VPN's CIDR).
type Grower interface {
	// Grow returns n with one more range, or an error when none can be had.
	Grow(ctx context.Context, n Network) (Network, error)
}
