//go:build linux

package datapath

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"

	"github.com/sdncni/sdncni/internal/testenv"
)

func requireNoEntries(t *testing.T, d *Datapath) {
	t.Helper()
	for _, m := range []*ebpf.Map{d.objs.SdncniEp, d.objs.SdncniDst, d.objs.SdncniPol, d.objs.SdncniCt} {
		k := make([]byte, m.KeySize())
		require.ErrorIs(t, m.NextKey(nil, &k), ebpf.ErrKeyNotExist, "map %s not empty", m)
	}
}

func requireNoPins(t *testing.T, tp *topo) {
	t.Helper()
	entries, err := os.ReadDir(linksDir(tp.pinDir))
	require.NoError(t, err)
	require.Empty(t, entries)
}

// hostUp reports whether ep's host veth is administratively up.
func (tp *topo) hostUp(t *testing.T, ep Endpoint) bool {
	t.Helper()
	var up bool
	tp.inNode(t, func() error {
		l, err := netlink.LinkByName(ep.HostIfName)
		if err != nil {
			return err
		}
		up = l.Attrs().Flags&net.FlagUp != 0
		return nil
	})
	return up
}

func TestLifecycleEdges(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "ip")
	tp := newTopo(t, "bridge")
	d := tp.open(t, AttachAuto)
	t.Cleanup(func() { tp.inNode(t, func() error { return d.Teardown(t.Context()) }) })
	a, b := tp.a.ep, tp.b.ep

	t.Run("failed attach rolls back", func(t *testing.T) {
		bad := a
		bad.OVSIfIndex = 99999 // no such interface: the second hook fails
		var err error
		tp.inNode(t, func() error { err = d.Attach(t.Context(), bad); return nil })
		require.Error(t, err)
		requireNoEntries(t, d)
		requireNoPins(t, tp)
		require.False(t, tp.hostUp(t, a), "a host veth without its programs must be down (fail closed)")
		tp.inNode(t, func() error { return d.Attach(t.Context(), a) })
		require.True(t, tp.hostUp(t, a), "Attach sets the host veth up once its programs run")
		tp.inNode(t, func() error { return d.Detach(t.Context(), a) })
	})

	t.Run("invalid endpoints", func(t *testing.T) {
		for _, mod := range []func(*Endpoint){
			func(e *Endpoint) { e.MAC = nil },
			func(e *Endpoint) { e.HostIfIndex = 0 },
			func(e *Endpoint) { e.OVSIfIndex = e.HostIfIndex },
			func(e *Endpoint) { e.IP = netip.MustParseAddr("fd00::1") },
			func(e *Endpoint) { e.OVSIfName = "" },
		} {
			ep := a
			mod(&ep)
			require.ErrorIs(t, d.Attach(t.Context(), ep), ErrInvalidEndpoint)
		}
		requireNoEntries(t, d)
	})

	t.Run("concurrent attach and detach of different endpoints", func(t *testing.T) {
		for range 5 {
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for i, ep := range []Endpoint{a, b} {
				wg.Go(func() {
					errs[i] = tp.node.Do(func(ns.NetNS) error {
						return errors.Join(d.Attach(t.Context(), ep), d.Check(t.Context(), ep), d.Detach(t.Context(), ep))
					})
				})
			}
			wg.Wait()
			require.NoError(t, errors.Join(errs...))
		}
		requireNoEntries(t, d)
		requireNoPins(t, tp)
	})

	t.Run("detach is idempotent and works when the interfaces are gone", func(t *testing.T) {
		tp.inNode(t, func() error { return errors.Join(d.Attach(t.Context(), a), d.Attach(t.Context(), b)) })
		tp.inNode(t, func() error { return d.Detach(t.Context(), a) })
		tp.inNode(t, func() error { return d.Detach(t.Context(), a) })
		tp.inNode(t, func() error {
			for _, name := range []string{b.HostIfName, b.OVSIfName} {
				l, err := netlink.LinkByName(name)
				if err != nil {
					return err
				}
				if err := netlink.LinkDel(l); err != nil {
					return err
				}
			}
			return nil
		})
		// GC knows only what the maps hold: no interface names any more.
		var eps []Endpoint
		tp.inNode(t, func() error { var err error; eps, err = d.Endpoints(t.Context()); return err })
		require.Len(t, eps, 1)
		require.Empty(t, eps[0].HostIfName)
		tp.inNode(t, func() error { return d.Detach(t.Context(), eps[0]) })
		requireNoEntries(t, d)
		requireNoPins(t, tp)
	})
}

func TestOpenRejectsBadConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"empty pin dir": {},
		"unknown mode":  {PinDir: "/sys/fs/bpf/sdncni-dpt-x", Mode: "xdp"},
		"not on bpffs":  {PinDir: t.TempDir()},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Open(t.Context(), cfg, testLogger(t))
			require.Error(t, err)
		})
	}
}

// TestOpenReplacesDisposablePins: pins left by an older build whose counter array was
// smaller do not stop Open (counters and Service endpoints are rebuilt); an
// incompatible map that holds pods' state (sdncni_ep) still does.
func TestOpenReplacesDisposablePins(t *testing.T) {
	testenv.RequireRoot(t)
	pin := func(t *testing.T, dir, name string, ms *ebpf.MapSpec) {
		t.Helper()
		require.NoError(t, os.MkdirAll(mapsDir(dir), 0o700))
		m, err := ebpf.NewMap(ms)
		require.NoError(t, err)
		defer func() { _ = m.Close() }()
		require.NoError(t, m.Pin(filepath.Join(mapsDir(dir), name)))
	}
	newDir := func(t *testing.T) string {
		dir := "/sys/fs/bpf/sdncni-dpt-pins-" + strconv.Itoa(os.Getpid()) + "-" + filepath.Base(t.Name())
		require.NoError(t, ensureBPFFS(dir))
		t.Cleanup(func() { _ = os.RemoveAll(dir) })
		return dir
	}
	t.Run("old counters", func(t *testing.T) {
		dir := newDir(t)
		pin(t, dir, bpfMapSdncniCnt, &ebpf.MapSpec{Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 15})
		d, err := Open(t.Context(), Config{PinDir: dir}, testLogger(t))
		require.NoError(t, err)
		defer func() { require.NoError(t, d.Teardown(t.Context())) }()
		info, err := d.objs.SdncniCnt.Info()
		require.NoError(t, err)
		require.Equal(t, uint32(64), info.MaxEntries, "the counter map was replaced")
		c, err := d.Counters(t.Context())
		require.NoError(t, err)
		require.Contains(t, c, "to_ovs_service")
	})
	t.Run("old endpoints", func(t *testing.T) {
		dir := newDir(t)
		pin(t, dir, bpfMapSdncniEp, &ebpf.MapSpec{Type: ebpf.Hash, KeySize: 4, ValueSize: 8, MaxEntries: 16})
		_, err := Open(t.Context(), Config{PinDir: dir}, testLogger(t))
		require.ErrorIs(t, err, ErrIncompatiblePins)
	})
}
