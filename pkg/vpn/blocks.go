package vpn

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// maxBlocks bounds the walk over a CIDR's blocks (a /8 in /26 blocks is 262144).
const maxBlocks = 1 << 20

// Blocks returns how many blocks of prefix length size a CIDR holds, and the i-th.
func Blocks(cidr netip.Prefix, size int) (int, func(i int) netip.Prefix, error) {
	cidr = cidr.Masked()
	if !cidr.Addr().Is4() {
		return 0, nil, fmt.Errorf("%w: %s is not IPv4", ErrNotReady, cidr)
	}
	if size < cidr.Bits() || size > 30 {
		return 0, nil, fmt.Errorf("block size /%d does not fit %s", size, cidr)
	}
	n := 1 << (size - cidr.Bits())
	if n > maxBlocks {
		n = maxBlocks
	}
	b := cidr.Addr().As4()
	base := binary.BigEndian.Uint32(b[:])
	step := uint32(1) << (32 - size)
	return n, func(i int) netip.Prefix {
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], base+uint32(i)*step)
		return netip.PrefixFrom(netip.AddrFrom4(a), size)
	}, nil
}

// NextFreeBlock returns the index of the first block at or after from (of count, the
// i-th being block(i)) that overlaps none of held, or -1. Blocks of a VPN never overlap
// each other, so held may mix this VPN's blocks and other VPNs' blocks on the node.
func NextFreeBlock(from, count int, block func(int) netip.Prefix, held []netip.Prefix) int {
	for i := from; i < count; i++ {
		p := block(i)
		free := true
		for _, h := range held {
			if h.Overlaps(p) {
				free = false
				break
			}
		}
		if free {
			return i
		}
	}
	return -1
}
