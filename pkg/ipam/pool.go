package ipam

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
)

// block is a validated Range with its defaults filled in.
type block struct {
	subnet    netip.Prefix
	gateway   netip.Addr
	start     netip.Addr
	end       netip.Addr
	network   netip.Addr
	broadcast netip.Addr // zero for IPv6
}

// validPool is a Pool that passed validate.
type validPool struct {
	name   string
	blocks []block
}

func validate(p Pool) (validPool, error) {
	if p.Name == "" {
		return validPool{}, fmt.Errorf("%w: empty name", ErrInvalidPool)
	}
	if len(p.Ranges) == 0 {
		return validPool{}, fmt.Errorf("%w: pool %s has no ranges", ErrInvalidPool, p.Name)
	}
	vp := validPool{name: p.Name, blocks: make([]block, 0, len(p.Ranges))}
	for i, r := range p.Ranges {
		b, err := validateRange(r)
		if err != nil {
			return validPool{}, fmt.Errorf("%w: pool %s range %d: %s", ErrInvalidPool, p.Name, i, err)
		}
		if i > 0 && b.subnet.Addr().Is4() != vp.blocks[0].subnet.Addr().Is4() {
			return validPool{}, fmt.Errorf("%w: pool %s mixes IPv4 and IPv6 ranges; use one pool per family", ErrInvalidPool, p.Name)
		}
		vp.blocks = append(vp.blocks, b)
	}
	sorted := slices.Clone(vp.blocks)
	slices.SortFunc(sorted, func(a, b block) int { return a.start.Compare(b.start) })
	for i := 1; i < len(sorted); i++ {
		if sorted[i].start.Compare(sorted[i-1].end) <= 0 {
			return validPool{}, fmt.Errorf("%w: pool %s: range %s-%s overlaps %s-%s", ErrInvalidPool, p.Name,
				sorted[i].start, sorted[i].end, sorted[i-1].start, sorted[i-1].end)
		}
	}
	return vp, nil
}

// validateRange returns a plain error; validate wraps it with ErrInvalidPool.
func validateRange(r Range) (block, error) {
	s := r.Subnet
	if !s.IsValid() {
		return block{}, fmt.Errorf("invalid subnet")
	}
	if s.Addr().Is4In6() || s.Addr().Zone() != "" {
		return block{}, fmt.Errorf("subnet %s: use plain IPv4 or IPv6 without zone", s)
	}
	if s.Masked() != s {
		return block{}, fmt.Errorf("subnet %s has host bits set (want %s)", s, s.Masked())
	}
	// IPv4 needs two addresses besides network and broadcast to be of any
	// use (a /31 or /32 has none left); IPv6 only loses the network address.
	maxBits := 30
	if s.Addr().Is6() {
		maxBits = 127
	}
	if s.Bits() > maxBits {
		return block{}, fmt.Errorf("subnet %s too small to allocate from", s)
	}
	b := block{subnet: s, network: s.Addr(), start: r.Start, end: r.End, gateway: r.Gateway}
	if s.Addr().Is4() {
		b.broadcast = lastAddr(s)
	}
	if !b.start.IsValid() {
		b.start = b.network.Next()
	}
	if !b.end.IsValid() {
		b.end = lastAddr(s)
		if b.broadcast.IsValid() {
			b.end = b.broadcast.Prev()
		}
	}
	for _, a := range []struct {
		what string
		addr netip.Addr
	}{{"start", b.start}, {"end", b.end}} {
		if !s.Contains(a.addr) {
			return block{}, fmt.Errorf("%s %s not in subnet %s", a.what, a.addr, s)
		}
	}
	if b.start.Compare(b.end) > 0 {
		return block{}, fmt.Errorf("start %s after end %s", b.start, b.end)
	}
	if b.gateway.IsValid() {
		if !s.Contains(b.gateway) {
			return block{}, fmt.Errorf("gateway %s not in subnet %s", b.gateway, s)
		}
		if b.gateway == b.network || b.gateway == b.broadcast {
			return block{}, fmt.Errorf("gateway %s is the network or broadcast address of %s", b.gateway, s)
		}
	}
	return b, nil
}

// contains reports whether a is inside [start, end] of b.
func (b block) contains(a netip.Addr) bool {
	return a.BitLen() == b.start.BitLen() && a.Compare(b.start) >= 0 && a.Compare(b.end) <= 0
}

// usable reports whether a may be handed out from b.
func (b block) usable(a netip.Addr) bool {
	return b.contains(a) && a != b.network && a != b.broadcast && a != b.gateway
}

// size is the number of addresses b can hand out, saturating.
func (b block) size() uint64 {
	n := countBetween(b.start, b.end)
	for _, x := range []netip.Addr{b.network, b.broadcast, b.gateway} {
		if x.IsValid() && b.contains(x) {
			n--
		}
	}
	return n
}

// blockFor returns the block that may hand out a, if any.
func (vp validPool) blockFor(a netip.Addr) (block, bool) {
	for _, b := range vp.blocks {
		if b.usable(a) {
			return b, true
		}
	}
	return block{}, false
}

func (vp validPool) total() int {
	var n uint64
	for _, b := range vp.blocks {
		n = satAdd(n, b.size())
	}
	return clampInt(n)
}

// nextFit returns the first usable address not in used, scanning every block
// once in pool order starting just after last (or at the first block's start
// when last is in no block). The scan visits at most len(used) + 3 addresses
// per block before it finds a free one, so huge IPv6 ranges are fine.
func (vp validPool) nextFit(last netip.Addr, used func(netip.Addr) bool) (netip.Addr, block, bool) {
	n := len(vp.blocks)
	startIdx, startAddr := 0, vp.blocks[0].start
	for i, b := range vp.blocks {
		if last.IsValid() && b.contains(last) {
			if last == b.end {
				startIdx = (i + 1) % n
				startAddr = vp.blocks[startIdx].start
			} else {
				startIdx, startAddr = i, last.Next()
			}
			break
		}
	}
	// k == 0: the start block from startAddr; k == n: the start block again
	// up to just before startAddr.
	for k := 0; k <= n; k++ {
		b := vp.blocks[(startIdx+k)%n]
		from, to := b.start, b.end
		if k == 0 {
			from = startAddr
		}
		if k == n {
			if startAddr == b.start {
				break
			}
			to = startAddr.Prev()
		}
		for a := from; ; a = a.Next() {
			if b.usable(a) && !used(a) {
				return a, b, true
			}
			if a == to {
				break
			}
		}
	}
	return netip.Addr{}, block{}, false
}

func sortAllocations(as []Allocation) {
	slices.SortFunc(as, func(a, b Allocation) int {
		return cmp.Or(cmp.Compare(a.Pool, b.Pool), a.Addr.Addr().Compare(b.Addr.Addr()))
	})
}
