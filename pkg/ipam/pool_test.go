package ipam

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func rng(subnet, gw, start, end string) Range {
	r := Range{Subnet: netip.MustParsePrefix(subnet)}
	if gw != "" {
		r.Gateway = netip.MustParseAddr(gw)
	}
	if start != "" {
		r.Start = netip.MustParseAddr(start)
	}
	if end != "" {
		r.End = netip.MustParseAddr(end)
	}
	return r
}

// drain allocates from an in-memory state until the pool is exhausted and
// returns the addresses in the order they were handed out.
func drain(t *testing.T, vp validPool) []netip.Addr {
	t.Helper()
	st := newState()
	var out []netip.Addr
	for i := 0; ; i++ {
		require.Less(t, i, 1<<12, "pool never exhausted")
		a, changed, err := st.allocate(vp, Owner{ContainerID: fmt.Sprintf("c%d", i), IfName: "eth0"}, time.Unix(0, 0))
		if errors.Is(err, ErrExhausted) {
			require.ErrorContains(t, err, vp.name)
			return out
		}
		require.NoError(t, err)
		require.True(t, changed)
		out = append(out, a.Addr.Addr())
	}
}

func TestRangeArithmetic(t *testing.T) {
	tests := []struct {
		name   string
		ranges []Range
		want   []netip.Addr // full allocation order; nil means check first/last/count
		first  string
		last   string
		count  int
	}{
		{name: "/30 without gateway", ranges: []Range{rng("10.0.0.0/30", "", "", "")}, want: addrs("10.0.0.1", "10.0.0.2")},
		{name: "/30 with gateway", ranges: []Range{rng("10.0.0.0/30", "10.0.0.1", "", "")}, want: addrs("10.0.0.2")},
		{name: "/30 gateway is the only host left", ranges: []Range{rng("10.0.0.0/30", "10.0.0.2", "10.0.0.2", "10.0.0.2")}, want: nil, count: 0},
		{name: "/24 with gateway", ranges: []Range{rng("10.1.2.0/24", "10.1.2.1", "", "")}, first: "10.1.2.2", last: "10.1.2.254", count: 253},
		{name: "/24 gateway at the top", ranges: []Range{rng("10.1.2.0/24", "10.1.2.254", "", "")}, first: "10.1.2.1", last: "10.1.2.253", count: 253},
		{name: "sub-range with gateway inside", ranges: []Range{rng("10.0.0.0/24", "10.0.0.11", "10.0.0.10", "10.0.0.12")}, want: addrs("10.0.0.10", "10.0.0.12")},
		{name: "sub-range spanning network and broadcast", ranges: []Range{rng("10.0.0.0/29", "10.0.0.1", "10.0.0.0", "10.0.0.7")},
			want: addrs("10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6")},
		{name: "per-node blocks of one CIDR, in pool order", ranges: []Range{
			rng("10.8.0.0/16", "10.8.0.1", "10.8.1.0", "10.8.1.3"),
			rng("10.8.0.0/16", "10.8.0.1", "10.8.0.0", "10.8.0.3"),
			rng("10.8.0.0/16", "10.8.0.1", "10.8.255.252", "10.8.255.255"),
		}, want: addrs("10.8.1.0", "10.8.1.1", "10.8.1.2", "10.8.1.3", "10.8.0.2", "10.8.0.3", "10.8.255.252", "10.8.255.253", "10.8.255.254")},
		{name: "two subnets", ranges: []Range{rng("10.0.0.0/30", "", "", ""), rng("192.168.0.0/30", "192.168.0.1", "", "")},
			want: addrs("10.0.0.1", "10.0.0.2", "192.168.0.2")},
		{name: "IPv6 /126 has no broadcast", ranges: []Range{rng("2001:db8::/126", "", "", "")}, want: addrs("2001:db8::1", "2001:db8::2", "2001:db8::3")},
		{name: "IPv6 /127", ranges: []Range{rng("2001:db8::/127", "", "", "")}, want: addrs("2001:db8::1")},
		{name: "IPv6 sub-range with gateway", ranges: []Range{rng("2001:db8::/64", "2001:db8::1", "2001:db8::", "2001:db8::3")}, want: addrs("2001:db8::2", "2001:db8::3")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vp, err := validate(Pool{Name: "net", Ranges: tt.ranges})
			require.NoError(t, err)
			got := drain(t, vp)
			if tt.want != nil || tt.first == "" {
				require.Equal(t, tt.want, got)
				require.Equal(t, len(tt.want), vp.total())
				return
			}
			require.Len(t, got, tt.count)
			require.Equal(t, tt.count, vp.total())
			require.Equal(t, netip.MustParseAddr(tt.first), got[0])
			require.Equal(t, netip.MustParseAddr(tt.last), got[len(got)-1])
		})
	}
}

func TestInvalidPools(t *testing.T) {
	tests := []struct {
		name string
		pool Pool
	}{
		{"empty name", Pool{Ranges: []Range{rng("10.0.0.0/24", "", "", "")}}},
		{"no ranges", Pool{Name: "n"}},
		{"zero subnet", Pool{Name: "n", Ranges: []Range{{}}}},
		{"host bits set", Pool{Name: "n", Ranges: []Range{rng("10.0.0.5/24", "", "", "")}}},
		{"IPv4 /31", Pool{Name: "n", Ranges: []Range{rng("10.0.0.0/31", "", "", "")}}},
		{"IPv4 /32", Pool{Name: "n", Ranges: []Range{rng("10.0.0.0/32", "", "", "")}}},
		{"IPv6 /128", Pool{Name: "n", Ranges: []Range{rng("2001:db8::/128", "", "", "")}}},
		{"4-in-6 subnet", Pool{Name: "n", Ranges: []Range{rng("::ffff:10.0.0.0/120", "", "", "")}}},
		{"start outside subnet", Pool{Name: "n", Ranges: []Range{rng("10.0.0.0/24", "", "10.0.1.1", "")}}},
		{"end outside subnet", Pool{Name: "n", Ranges: []Range{rng("10.0.0.0/24", "", "", "10.0.1.1")}}},
		{"start after end", Pool{Name: "n", Ranges: []Range{rng("10.0.0.0/24", "", "10.0.0.9", "10.0.0.8")}}},
		{"gateway outside subnet", Pool{Name: "n", Ranges: []Range{rng("10.0.0.0/24", "10.0.1.1", "", "")}}},
		{"gateway is network", Pool{Name: "n", Ranges: []Range{rng("10.0.0.0/24", "10.0.0.0", "", "")}}},
		{"gateway is broadcast", Pool{Name: "n", Ranges: []Range{rng("10.0.0.0/24", "10.0.0.255", "", "")}}},
		{"overlapping ranges", Pool{Name: "n", Ranges: []Range{rng("10.0.0.0/24", "", "10.0.0.1", "10.0.0.10"), rng("10.0.0.0/24", "", "10.0.0.10", "10.0.0.20")}}},
		{"identical ranges", Pool{Name: "n", Ranges: []Range{rng("10.0.0.0/24", "", "", ""), rng("10.0.0.0/24", "", "", "")}}},
		{"overlapping subnets", Pool{Name: "n", Ranges: []Range{rng("10.0.0.0/16", "", "", ""), rng("10.0.3.0/24", "", "", "")}}},
		{"mixed families", Pool{Name: "n", Ranges: []Range{rng("10.0.0.0/24", "", "", ""), rng("2001:db8::/64", "", "", "")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := validate(tt.pool)
			require.ErrorIs(t, err, ErrInvalidPool)
		})
	}
}

func TestTotalSaturates(t *testing.T) {
	vp, err := validate(Pool{Name: "v6", Ranges: []Range{rng("2001:db8::/64", "2001:db8::1", "", "")}})
	require.NoError(t, err)
	require.Equal(t, math.MaxInt, vp.total())

	vp, err = validate(Pool{Name: "v6", Ranges: []Range{rng("2001:db8::/112", "2001:db8::1", "", "")}})
	require.NoError(t, err)
	require.Equal(t, 1<<16-2, vp.total())

	vp, err = validate(Pool{Name: "v4", Ranges: []Range{rng("10.0.0.0/8", "10.0.0.1", "", "")}})
	require.NoError(t, err)
	require.Equal(t, 1<<24-3, vp.total())
}

func TestNextFitHugeIPv6(t *testing.T) {
	vp, err := validate(Pool{Name: "v6", Ranges: []Range{rng("2001:db8::/64", "2001:db8::1", "", "")}})
	require.NoError(t, err)
	st := newState()
	for i, want := range addrs("2001:db8::2", "2001:db8::3", "2001:db8::4") {
		a, _, err := st.allocate(vp, Owner{ContainerID: string(rune('a' + i)), IfName: "eth0"}, time.Now())
		require.NoError(t, err)
		require.Equal(t, netip.PrefixFrom(want, 64), a.Addr)
	}
}

func TestCountBetween(t *testing.T) {
	require.Equal(t, uint64(1), countBetween(netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.1")))
	require.Equal(t, uint64(1<<32), countBetween(netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("255.255.255.255")))
	require.Equal(t, uint64(1<<16), countBetween(netip.MustParseAddr("2001:db8::"), netip.MustParseAddr("2001:db8::ffff")))
	require.Equal(t, uint64(math.MaxUint64), countBetween(netip.MustParseAddr("2001:db8::"), netip.MustParseAddr("2001:db8::ffff:ffff:ffff:ffff")))
	require.Equal(t, uint64(math.MaxUint64), countBetween(netip.MustParseAddr("::"), netip.MustParseAddr("ffff::")))
}
