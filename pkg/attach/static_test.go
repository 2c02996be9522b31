package attach

import (
	"context"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

func testNet(name string, id uint32, cidr string) Network {
	p := netip.MustParsePrefix(cidr)
	return Network{Name: name, ID: id, Prefix: p, Gateway: p.Addr().Next(), MTU: 1400, FastPath: true}
}

func TestStaticNetworks(t *testing.T) {
	a, b := testNet("a", 1, "10.0.0.0/24"), testNet("b", 2, "10.0.0.0/24") // overlap is allowed
	s, err := NewStaticNetworks("a", []Network{a, b}, map[string][]string{"b": {"tenant-b", "other-b"}})
	require.NoError(t, err)
	ctx := context.Background()
	for ns, want := range map[string]string{"tenant-b": "b", "other-b": "b", "default": "a", "x": "a"} {
		got, err := s.ForNamespace(ctx, ns)
		require.NoError(t, err)
		require.Equal(t, want, got.Name, ns)
	}
	n, ok := s.ByName("b")
	require.True(t, ok)
	require.Equal(t, uint32(2), n.ID)
	_, ok = s.ByName("c")
	require.False(t, ok)
	require.Len(t, s.All(), 2)
}

func TestStaticNetworksInvalid(t *testing.T) {
	a := testNet("a", 1, "10.0.0.0/24")
	cases := map[string]struct {
		def  string
		nets []Network
		ns   map[string][]string
	}{
		"unknown default":      {"z", []Network{a}, nil},
		"duplicate name":       {"a", []Network{a, a}, nil},
		"duplicate id":         {"a", []Network{a, testNet("b", 1, "10.1.0.0/24")}, nil},
		"id zero":              {"a", []Network{testNet("a", 0, "10.0.0.0/24")}, nil},
		"unknown ns network":   {"a", []Network{a}, map[string][]string{"q": {"x"}}},
		"namespace claimed x2": {"a", []Network{a, testNet("b", 2, "10.1.0.0/24")}, map[string][]string{"a": {"x"}, "b": {"x"}}},
		"not a network address": {"a", []Network{{Name: "a", ID: 1, Prefix: netip.MustParsePrefix("10.0.0.5/24"),
			Gateway: netip.MustParseAddr("10.0.0.1"), MTU: 1400}}, nil},
		"gateway outside": {"a", []Network{{Name: "a", ID: 1, Prefix: netip.MustParsePrefix("10.0.0.0/24"),
			Gateway: netip.MustParseAddr("10.0.1.1"), MTU: 1400}}, nil},
		"mtu": {"a", []Network{{Name: "a", ID: 1, Prefix: netip.MustParsePrefix("10.0.0.0/24"),
			Gateway: netip.MustParseAddr("10.0.0.1"), MTU: 100}}, nil},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := NewStaticNetworks(tc.def, tc.nets, tc.ns)
			require.Error(t, err)
		})
	}
}

func TestNamesFitAndDiffer(t *testing.T) {
	a := NamesFor(Key{"c1", "eth0"})
	b := NamesFor(Key{"c1", "eth1"})
	require.Len(t, a.HostIf, 15)
	require.Len(t, a.OVSIf, 15)
	require.NotEqual(t, a.HostIf, b.HostIf)
	require.Equal(t, a, NamesFor(Key{"c1", "eth0"}), "names must be deterministic")
	require.True(t, IsOurLink(a.HostIf))
	require.True(t, IsOurLink(a.OVSIf))
	require.False(t, IsOurLink("eth0"))
}

func TestPoolFromRanges(t *testing.T) {
	n := testNet("a", 1, "10.0.0.0/16")
	p := n.Pool()
	require.Len(t, p.Ranges, 1)
	require.Equal(t, n.Gateway, p.Ranges[0].Gateway)
	n.Ranges = []netip.Prefix{netip.MustParsePrefix("10.0.4.0/24")}
	p = n.Pool()
	require.Equal(t, netip.MustParseAddr("10.0.4.0"), p.Ranges[0].Start)
	require.Equal(t, netip.MustParseAddr("10.0.4.255"), p.Ranges[0].End)
	require.Equal(t, n.Prefix, p.Ranges[0].Subnet)
}

func TestMACFor(t *testing.T) {
	m := MACFor(netip.MustParseAddr("10.1.2.3"))
	require.Equal(t, "0a:58:0a:01:02:03", m.String())
	require.Zero(t, m[0]&1, "unicast")
	require.NotZero(t, m[0]&2, "locally administered")
}
