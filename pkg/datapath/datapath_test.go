//go:build linux

package datapath

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"

	"github.com/sdncni/sdncni/internal/testenv"
)

func delta(before, after map[string]uint64) map[string]uint64 {
	out := map[string]uint64{}
	for k, v := range after {
		if v != before[k] {
			out[k] = v - before[k]
		}
	}
	return out
}

func toOVS(m map[string]uint64) (n uint64) {
	for k, v := range m {
		if strings.HasPrefix(k, "to_ovs") {
			n += v
		}
	}
	return n
}

func counters(t *testing.T, d *Datapath) map[string]uint64 {
	t.Helper()
	c, err := d.Counters(t.Context())
	require.NoError(t, err)
	return c
}

// ourIDs returns the kernel IDs of d's programs and maps.
func ourIDs(t *testing.T, d *Datapath) (progs []ebpf.ProgramID, maps []ebpf.MapID) {
	t.Helper()
	for _, p := range []*ebpf.Program{d.objs.SdncniFromPod, d.objs.SdncniFromOvs} {
		id, err := progID(p)
		require.NoError(t, err)
		progs = append(progs, id)
	}
	for _, m := range []*ebpf.Map{d.objs.SdncniCfg, d.objs.SdncniCnt, d.objs.SdncniDst, d.objs.SdncniEp, d.objs.SdncniVpnOff, d.objs.SdncniSvc} {
		info, err := m.Info()
		require.NoError(t, err)
		id, _ := info.ID()
		maps = append(maps, id)
	}
	return progs, maps
}

func TestRealTraffic(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "ip", "bpftool")
	for _, tc := range []struct {
		mode, want AttachMode
		standIn    string
	}{
		{AttachAuto, AttachTCX, "bridge"},
		{AttachTC, AttachTC, "bridge"},
		{AttachAuto, AttachTCX, "tap"},
	} {
		t.Run(string(tc.want)+"/"+tc.standIn, func(t *testing.T) { testRealTraffic(t, tc.mode, tc.want, tc.standIn) })
	}
}

func testRealTraffic(t *testing.T, mode, want AttachMode, standIn string) {
	tp := newTopo(t, standIn)
	d := tp.open(t, mode)
	tornDown := false
	t.Cleanup(func() {
		if !tornDown {
			tp.inNode(t, func() error { return d.Teardown(t.Context()) })
		}
	})
	require.Equal(t, want, d.Mode())
	a, b := tp.a.ep, tp.b.ep
	tp.inNode(t, func() error { return errors.Join(d.Attach(t.Context(), a), d.Attach(t.Context(), b)) })
	tp.inNode(t, func() error { return errors.Join(d.Check(t.Context(), a), d.Check(t.Context(), b)) })
	// Idempotent.
	tp.inNode(t, func() error { return d.Attach(t.Context(), a) })
	tp.inNode(t, func() error { return d.Check(t.Context(), a) })

	require.Equal(t, 5, udpEcho(t, tp, 5).replies, "warm-up (ARP over the slow path)")

	t.Run("fast path bypasses OVS, each packet once", func(t *testing.T) {
		c0, rx0 := counters(t, d), tp.ovsRx(t)
		res := udpEcho(t, tp, 300)
		moved, rx := delta(c0, counters(t, d)), tp.ovsRx(t)-rx0
		require.Equal(t, echoResult{replies: 300, received: 300}, res)
		require.GreaterOrEqual(t, moved["redirect_fast"], uint64(600))
		require.LessOrEqual(t, toOVS(moved), uint64(4), "counters %v", moved)
		require.LessOrEqual(t, rx, uint64(4), "the stand-in OVS saw fast-path packets")

		c0, rx0 = counters(t, d), tp.ovsRx(t)
		n := tcpStream(t, tp, time.Second, func() {})
		moved, rx = delta(c0, counters(t, d)), tp.ovsRx(t)-rx0
		t.Logf("tcp: %d MB in 1s; counters %v; stand-in OVS rx %d", n>>20, moved, rx)
		require.Positive(t, n)
		require.LessOrEqual(t, rx, uint64(4))
	})

	t.Run("fast path off globally and per VPN: slow path", func(t *testing.T) {
		for _, set := range []func(on bool) error{
			func(on bool) error { return d.SetFastPath(t.Context(), on) },
			func(on bool) error { return d.SetVPNFastPath(t.Context(), 10, on) },
		} {
			require.NoError(t, set(false))
			c0, rx0 := counters(t, d), tp.ovsRx(t)
			res := udpEcho(t, tp, 100)
			moved, rx := delta(c0, counters(t, d)), tp.ovsRx(t)-rx0
			require.Equal(t, echoResult{replies: 100, received: 100}, res)
			require.Zero(t, moved["redirect_fast"])
			require.GreaterOrEqual(t, moved["to_ovs_fastpath_off"], uint64(200))
			require.GreaterOrEqual(t, moved["from_ovs"], uint64(200))
			require.GreaterOrEqual(t, rx, uint64(200))
			require.NoError(t, set(true))
		}
	})

	t.Run("different VPNs never take the fast path", func(t *testing.T) {
		b20 := b
		b20.VPN = 20
		tp.inNode(t, func() error { return errors.Join(d.Detach(t.Context(), b), d.Attach(t.Context(), b20)) })
		c0 := counters(t, d)
		res := udpEcho(t, tp, 100)
		moved := delta(c0, counters(t, d))
		require.Equal(t, 100, res.replies, "the stand-in OVS forwards between VPNs (isolation is OVN's job)")
		require.Zero(t, res.dups)
		require.Zero(t, moved["redirect_fast"])
		require.GreaterOrEqual(t, moved["to_ovs_cross_vpn_or_unknown_dst"], uint64(200))
		tp.inNode(t, func() error { return errors.Join(d.Detach(t.Context(), b20), d.Attach(t.Context(), b)) })
	})

	t.Run("check names what is wrong", func(t *testing.T) {
		_, _, key, _ := b.entries()
		require.NoError(t, d.objs.SdncniDst.Delete(&key))
		var err error
		tp.inNode(t, func() error { err = d.Check(t.Context(), b); return nil })
		require.ErrorIs(t, err, ErrNotAttached)
		require.ErrorContains(t, err, "destination entry")
		tp.inNode(t, func() error { return d.Attach(t.Context(), b) })
		tp.inNode(t, func() error { return d.Check(t.Context(), b) })
	})

	t.Run("endpoints from the maps", func(t *testing.T) {
		var eps []Endpoint
		tp.inNode(t, func() error { var err error; eps, err = d.Endpoints(t.Context()); return err })
		require.ElementsMatch(t, []Endpoint{a, b}, eps)
	})

	t.Run("restart keeps a TCP stream and the maps", func(t *testing.T) {
		c0 := counters(t, d)
		oldProgs, _ := ourIDs(t, d)
		n := tcpStream(t, tp, 3*time.Second, func() {
			require.NoError(t, d.Close())
			time.Sleep(200 * time.Millisecond) // traffic runs with no process holding anything
			d = tp.open(t, mode)
		})
		require.Positive(t, n)
		newProgs, _ := ourIDs(t, d)
		require.NotEqual(t, oldProgs, newProgs)
		tp.inNode(t, func() error { return errors.Join(d.Check(t.Context(), a), d.Check(t.Context(), b)) })
		moved := delta(c0, counters(t, d))
		require.Positive(t, moved["redirect_fast"], "counters survive and keep counting")
		var eps []Endpoint
		tp.inNode(t, func() error { var err error; eps, err = d.Endpoints(t.Context()); return err })
		require.ElementsMatch(t, []Endpoint{a, b}, eps)
	})

	t.Run("teardown leaves nothing", func(t *testing.T) {
		progs, maps := ourIDs(t, d)
		tp.inNode(t, func() error { return d.Teardown(t.Context()) })
		tornDown = true
		for _, ep := range []Endpoint{a, b} {
			require.False(t, tp.hostUp(t, ep), "%s up without its program after teardown", ep.HostIfName)
		}
		_, err := os.Stat(tp.pinDir)
		require.ErrorIs(t, err, os.ErrNotExist)
		tp.inNode(t, func() error {
			for _, ifindex := range []int{a.HostIfIndex, a.OVSIfIndex, b.HostIfIndex, b.OVSIfIndex} {
				res, err := link.QueryPrograms(link.QueryOptions{Target: ifindex, Attach: ebpf.AttachTCXIngress})
				require.NoError(t, err)
				require.Empty(t, res.Programs)
				qdiscs, err := netlink.QdiscList(tcLink(ifindex))
				require.NoError(t, err)
				for _, q := range qdiscs {
					require.NotEqual(t, "clsact", q.Type())
				}
			}
			return nil
		})
		out, err := exec.Command("nsenter", "--net="+tp.node.Path(), "bpftool", "net", "show").CombinedOutput()
		require.NoError(t, err, "%s", out)
		require.NotContains(t, string(out), "sdncni")
		require.Eventually(t, func() bool {
			for _, id := range progs {
				if p, err := ebpf.NewProgramFromID(id); err == nil {
					_ = p.Close()
					return false
				}
			}
			for _, id := range maps {
				if m, err := ebpf.NewMapFromID(id); err == nil {
					_ = m.Close()
					return false
				}
			}
			return true
		}, 10*time.Second, 100*time.Millisecond, "programs or maps of ours still in the kernel")
	})
}
