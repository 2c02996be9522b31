//go:build linux

package datapath

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
)

// pod is one test pod: its netns, the host veth and the OVS stand-in in the node netns.
type pod struct {
	ns   ns.NetNS
	ep   Endpoint
	port string // the stand-in bridge port peered with ep.OVSIfName
}

// topo is a node netns with two pods; a Linux bridge with one veth per pod plays OVS:
// what from_pod hands to "OVS" on the pod's ovsIf comes out of the bridge on the other
// pod's ovsIf, like OVS would deliver it.
//
// With standIn "tap" the ovsIfs are tap devices, like OVS internal ports of the
// userspace datapath, and a goroutine reading one tap's fd and writing to the other's
// plays the two-port switch.
type topo struct {
	node    ns.NetNS
	a, b    *pod
	pinDir  string
	standIn string
	taps    map[string]*os.File
	tapRx   atomic.Uint64
}

func randSuffix(t *testing.T) string {
	b := make([]byte, 3)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

func newNetNS(t *testing.T, name string) ns.NetNS {
	t.Helper()
	out, err := exec.Command("ip", "netns", "add", name).CombinedOutput()
	require.NoError(t, err, "ip netns add: %s", out)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	n, err := ns.GetNS(filepath.Join("/var/run/netns", name))
	require.NoError(t, err)
	t.Cleanup(func() { _ = n.Close() })
	require.NoError(t, n.Do(func(ns.NetNS) error {
		for _, p := range []string{"all", "default"} {
			if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+p+"/disable_ipv6", []byte("1"), 0o644); err != nil {
				return err
			}
		}
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(lo)
	}))
	return n
}

func newTopo(t *testing.T, standIn string) *topo {
	t.Helper()
	r := randSuffix(t)
	tp := &topo{
		node:    newNetNS(t, "sdncni-dpt-"+r+"-node"),
		pinDir:  "/sys/fs/bpf/sdncni-dpt-" + r,
		standIn: standIn,
		taps:    map[string]*os.File{},
	}
	t.Cleanup(func() { _ = os.RemoveAll(tp.pinDir) })
	require.NoError(t, tp.node.Do(func(ns.NetNS) error {
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "dpt-br"}}
		if err := netlink.LinkAdd(br); err != nil {
			return err
		}
		return netlink.LinkSetUp(br)
	}))
	tp.a = tp.addPod(t, "sdncni-dpt-"+r+"-a", "a", net.HardwareAddr{2, 0xdd, 0, 0, 0, 0xa}, netip.MustParseAddr("10.9.0.1"))
	tp.b = tp.addPod(t, "sdncni-dpt-"+r+"-b", "b", net.HardwareAddr{2, 0xdd, 0, 0, 0, 0xb}, netip.MustParseAddr("10.9.0.2"))
	if standIn == "tap" {
		tp.runTapSwitch(t)
	}
	return tp
}

// runTapSwitch forwards every frame read from one pod's tap to the other's, as OVS
// would between two ports of one logical switch.
func (tp *topo) runTapSwitch(t *testing.T) {
	t.Helper()
	a, b := tp.taps[tp.a.ep.OVSIfName], tp.taps[tp.b.ep.OVSIfName]
	var wg sync.WaitGroup
	for _, dir := range [][2]*os.File{{a, b}, {b, a}} {
		wg.Go(func() {
			buf := make([]byte, 65536)
			for {
				n, err := dir[0].Read(buf)
				if err != nil {
					return // closed by cleanup
				}
				tp.tapRx.Add(1)
				_, _ = dir[1].Write(buf[:n])
			}
		})
	}
	t.Cleanup(func() {
		_ = a.Close()
		_ = b.Close()
		wg.Wait()
	})
}

func (tp *topo) addPod(t *testing.T, nsName, id string, mac net.HardwareAddr, ip netip.Addr) *pod {
	t.Helper()
	p := &pod{ns: newNetNS(t, nsName), port: "dpt-bp" + id}
	p.ep = Endpoint{VPN: 10, HostIfName: "dpt-h" + id, OVSIfName: "dpt-o" + id, MAC: mac, IP: ip, FastPath: true}
	require.NoError(t, tp.node.Do(func(ns.NetNS) error {
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: p.ep.HostIfName}, PeerName: "dpt-p" + id,
			PeerNamespace: netlink.NsFd(int(p.ns.Fd()))}
		if err := netlink.LinkAdd(veth); err != nil {
			return err
		}
		names := []string{p.ep.HostIfName, p.ep.OVSIfName}
		if tp.standIn == "tap" {
			tap := &netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: p.ep.OVSIfName}, Mode: netlink.TUNTAP_MODE_TAP,
				Flags: netlink.TUNTAP_NO_PI | netlink.TUNTAP_ONE_QUEUE, NonPersist: true, Queues: 1}
			if err := netlink.LinkAdd(tap); err != nil {
				return err
			}
			tp.taps[p.ep.OVSIfName] = tap.Fds[0]
		} else {
			if err := tp.addBridgePort(p); err != nil {
				return err
			}
			names = append(names, p.port)
		}
		for _, name := range names {
			l, err := netlink.LinkByName(name)
			if err != nil {
				return err
			}
			if err := netlink.LinkSetUp(l); err != nil {
				return err
			}
			switch name {
			case p.ep.HostIfName:
				p.ep.HostIfIndex = l.Attrs().Index
			case p.ep.OVSIfName:
				p.ep.OVSIfIndex = l.Attrs().Index
			}
		}
		return nil
	}))
	require.NoError(t, p.ns.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName("dpt-p" + id)
		if err != nil {
			return err
		}
		if err := netlink.LinkSetName(l, "eth0"); err != nil {
			return err
		}
		if err := netlink.LinkSetHardwareAddr(l, mac); err != nil {
			return err
		}
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(24, 32)}}
		if err := netlink.AddrAdd(l, addr); err != nil {
			return err
		}
		return netlink.LinkSetUp(l)
	}))
	return p
}

func (tp *topo) addBridgePort(p *pod) error {
	ovs := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: p.ep.OVSIfName}, PeerName: p.port}
	if err := netlink.LinkAdd(ovs); err != nil {
		return err
	}
	br, err := netlink.LinkByName("dpt-br")
	if err != nil {
		return err
	}
	port, err := netlink.LinkByName(p.port)
	if err != nil {
		return err
	}
	return netlink.LinkSetMaster(port, br)
}

// ovsRx returns how many frames the stand-in OVS received from the pods.
func (tp *topo) ovsRx(t *testing.T) uint64 {
	t.Helper()
	if tp.standIn == "tap" {
		return tp.tapRx.Load()
	}
	var sum uint64
	require.NoError(t, tp.node.Do(func(ns.NetNS) error {
		for _, p := range []*pod{tp.a, tp.b} {
			l, err := netlink.LinkByName(p.port)
			if err != nil {
				return err
			}
			sum += l.Attrs().Statistics.RxPackets
		}
		return nil
	}))
	return sum
}

// open opens a Datapath inside the node netns.
func (tp *topo) open(t *testing.T, mode AttachMode) *Datapath {
	t.Helper()
	var d *Datapath
	require.NoError(t, tp.node.Do(func(ns.NetNS) error {
		var err error
		d, err = Open(t.Context(), Config{PinDir: tp.pinDir, Mode: mode}, testLogger(t))
		return err
	}))
	return d
}

// inNode runs f in the node netns.
func (tp *topo) inNode(t *testing.T, f func() error) {
	t.Helper()
	require.NoError(t, tp.node.Do(func(ns.NetNS) error { return f() }))
}
