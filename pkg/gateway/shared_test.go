package gateway

import (
	"context"
	"net/netip"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	"github.com/go-logr/logr"
	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/sdncni/sdncni/internal/testenv"
)

func sharedFixture(vpnID uint32, vip string, eps ...string) SharedService {
	p := SharedPort{Protocol: "udp", VIP: netip.MustParseAddrPort(vip)}
	for _, e := range eps {
		p.Endpoints = append(p.Endpoints, netip.MustParseAddrPort(e))
	}
	return SharedService{Name: "ns/" + vip, VPN: "v", VPNID: vpnID, Prefix: netip.MustParsePrefix("10.1.0.0/16"), Ports: []SharedPort{p}}
}

func TestSharedValidate(t *testing.T) {
	ok := sharedFixture(7, "10.96.0.10:53", "10.1.0.5:5353")
	require.NoError(t, ok.Validate())
	bad := []SharedService{
		sharedFixture(0, "10.96.0.10:53"),
		sharedFixture(maxSharedVPNID+1, "10.96.0.10:53"),
		sharedFixture(7, "[fd00::10]:53"),
		sharedFixture(7, "10.96.0.10:53", "[fd00::5]:53"),
	}
	noCIDR := ok
	noCIDR.Prefix = netip.Prefix{}
	sctp := sharedFixture(7, "10.96.0.10:53")
	sctp.Ports[0].Protocol = "sctp"
	for _, s := range append(bad, noCIDR, sctp) {
		require.Error(t, s.Validate(), "%+v", s)
	}
}

func TestStaleFlows(t *testing.T) {
	old := []SharedService{sharedFixture(7, "10.96.0.10:53", "10.1.0.5:5353", "10.1.0.6:5353"),
		sharedFixture(7, "10.96.0.20:80", "10.1.0.8:8080")}
	cur := []SharedService{sharedFixture(7, "10.96.0.10:53", "10.1.0.6:5353", "10.1.0.9:5353")}
	f := newStaleFlows(old, cur)
	ap := netip.MustParseAddrPort
	m := SharedMark(7)
	require.True(t, f.match("udp", ap("10.96.0.10:53"), ap("10.1.0.5:5353"), m), "endpoint left")
	require.False(t, f.match("udp", ap("10.96.0.10:53"), ap("10.1.0.6:5353"), m), "endpoint stays")
	require.False(t, f.match("udp", ap("10.96.0.10:53"), ap("10.1.0.9:5353"), m), "new endpoint")
	require.True(t, f.match("udp", ap("10.96.0.20:80"), ap("10.1.0.8:8080"), m), "Service no longer shared")
	require.True(t, f.match("udp", ap("10.96.0.20:80"), ap("10.1.0.8:8080"), 0), "… also without the mark (endpoint outside the CIDR)")
	require.False(t, f.match("tcp", ap("10.96.0.10:53"), ap("10.1.0.6:5353"), 0), "another protocol, unmarked: not ours")
	require.False(t, f.match("udp", ap("192.0.2.1:53"), ap("192.0.2.1:53"), 0x1234), "someone else's connection")
	// After a restart the old set is unknown: marked connections are still judged.
	f = newStaleFlows(nil, cur)
	require.True(t, f.match("udp", ap("10.96.0.10:53"), ap("10.1.0.5:5353"), m))
	require.False(t, f.match("udp", ap("10.96.0.10:53"), ap("10.1.0.6:5353"), m))
}

// TestSetSharedRulesAndTable: in a fresh netns, SetShared writes one chain per shared
// port with one rule per endpoint (a drop with none), one "fwmark M lookup M" rule per
// VPN that shares and the unreachable catch-all; writing fewer services removes the
// rules of the VPNs that no longer share; DeleteNetfilter and DeleteRules leave nothing.
func TestSetSharedRulesAndTable(t *testing.T) {
	testenv.RequireRoot(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	n, err := testutils.NewNS()
	require.NoError(t, err)
	t.Cleanup(func() { _ = n.Close(); _ = testutils.UnmountNS(n) })
	ours := func() (rules []netlink.Rule) {
		all, err := netlink.RuleList(unix.AF_INET)
		require.NoError(t, err)
		for _, r := range all {
			if r.Mark&sharedMarkMask == sharedMarkBase {
				rules = append(rules, r)
			}
		}
		return rules
	}
	chainRules := func() map[string]int {
		c, err := nftables.New()
		require.NoError(t, err)
		chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
		require.NoError(t, err)
		out := map[string]int{}
		for _, ch := range chains {
			if ch.Table.Name != TableName {
				continue
			}
			rs, err := c.GetRules(ch.Table, ch)
			require.NoError(t, err)
			out[ch.Name] = len(rs)
		}
		return out
	}
	require.NoError(t, n.Do(func(ns.NetNS) error {
		g := New(Config{}, nil, nil, nil, logr.Discard())
		a := sharedFixture(7, "10.96.0.10:53", "10.1.0.5:5353", "10.1.0.6:5353", "10.1.0.7:5353")
		b := sharedFixture(9, "10.96.0.20:80")
		ctx := context.Background()
		for range 2 {
			require.NoError(t, g.SetShared(ctx, []SharedService{a, b}))
		}
		got := chainRules()
		require.Equal(t, map[string]int{"mark": 1, "mark-out": 1, "dnat": 2, "dnat-out": 2, "input": 3, "output": 4, "forward": 6, "postrouting": 2,
			a.chainName(a.Ports[0]): 3, b.chainName(b.Ports[0]): 1}, got)
		// The first endpoint's rule, decoded: numgen random mod 3 == 0, mark 0x5dc00007 to
		// packet and conntrack, DNAT to 10.1.0.5:5353 (address as is, port big-endian).
		c, err := nftables.New()
		require.NoError(t, err)
		tbl := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: TableName}
		svcRules, err := c.GetRules(tbl, &nftables.Chain{Name: a.chainName(a.Ports[0]), Table: tbl})
		require.NoError(t, err)
		var ng *expr.Numgen
		var imms [][]byte
		var nat *expr.NAT
		for _, e := range svcRules[0].Exprs {
			switch e := e.(type) {
			case *expr.Numgen:
				ng = e
			case *expr.Immediate:
				imms = append(imms, e.Data)
			case *expr.NAT:
				nat = e
			}
		}
		require.NotNil(t, ng)
		require.Equal(t, uint32(3), ng.Modulus)
		require.Equal(t, uint32(unix.NFT_NG_RANDOM), ng.Type)
		mark := binaryutil.NativeEndian.PutUint32(SharedMark(7))
		require.Equal(t, [][]byte{mark, {10, 1, 0, 5}, {0x14, 0xe9}}, imms, "mark, endpoint address, port 5353")
		require.NotNil(t, nat)
		require.Equal(t, expr.NATTypeDestNAT, nat.Type)
		last := svcRules[len(svcRules)-1].Exprs
		require.False(t, slices.ContainsFunc(last, func(e expr.Any) bool { _, ok := e.(*expr.Numgen); return ok }),
			"the last endpoint takes what is left")

		rules := ours()
		require.Len(t, rules, 3, "%v", rules)
		// netlink's RuleList does not report the type: ask ip(8).
		out, err := exec.Command("ip", "rule", "show", "priority", "1001").CombinedOutput()
		require.NoError(t, err, string(out))
		require.Equal(t, "1001:\tfrom all fwmark 0x5dc00000/0xffff0000 unreachable", strings.TrimSpace(string(out)))
		out, err = exec.Command("ip", "rule", "show", "priority", "1000").CombinedOutput()
		require.NoError(t, err, string(out))
		require.Contains(t, string(out), "from all fwmark 0x5dc00007 lookup 1572864007")
		marks := map[uint32]int{}
		for _, r := range rules {
			marks[r.Mark] = r.Table
		}
		require.Equal(t, int(SharedMark(7)), marks[SharedMark(7)])
		require.Equal(t, int(SharedMark(9)), marks[SharedMark(9)])

		// b stops being shared; an invalid service is reported and left out.
		bad := sharedFixture(0, "10.96.0.30:53")
		require.Error(t, g.SetShared(ctx, []SharedService{a, bad}))
		require.Len(t, chainRules(), 9)
		require.Len(t, ours(), 2)

		// A restarting controller keeps the table it finds.
		require.NoError(t, EnsureNetfilter(Filter{}))
		require.Len(t, chainRules(), 9)

		require.NoError(t, DeleteNetfilter())
		require.NoError(t, DeleteRules())
		require.Empty(t, chainRules())
		require.Empty(t, ours())
		return nil
	}))
}
