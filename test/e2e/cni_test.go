package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/stretchr/testify/require"
)

// TestPodsReachEachOther: two pods through the real runtime library reach each other
// over ICMP and TCP, CHECK passes, DEL twice succeeds and leaves nothing.
func TestPodsReachEachOther(t *testing.T) {
	n := newNode(t)
	for _, v := range specVersions {
		t.Run(v, func(t *testing.T) {
			a, b := newPod(t, "a-"+v), newPod(t, "b-"+v)
			ipA := n.mustAdd(t, v, a)
			ipB := n.mustAdd(t, v, b)
			require.NotEqual(t, ipA, ipB)

			ping(t, a, ipB)
			ping(t, b, ipA)
			tcpExchange(t, a, b, ipB)

			require.NoError(t, n.check(t, v, a))
			require.NoError(t, n.check(t, v, b))

			for _, p := range []*pod{a, b} {
				require.NoError(t, n.del(t, v, p))
				require.NoError(t, n.del(t, v, p), "second DEL must succeed")
			}
			require.Empty(t, n.leftovers(t))
		})
	}
}

// TestResultShape: the printed result has the pod interface with its sandbox, the
// address with its gateway and the interface index, and the default route.
func TestResultShape(t *testing.T) {
	n := newNode(t)
	for _, v := range specVersions {
		t.Run(v, func(t *testing.T) {
			p := newPod(t, "shape")
			res, err := n.add(t, v, p)
			require.NoError(t, err)
			t.Cleanup(func() { _ = n.del(t, v, p) })
			require.Len(t, res.Interfaces, 2)
			require.Equal(t, "eth0", res.Interfaces[1].Name)
			require.Equal(t, p.netns, res.Interfaces[1].Sandbox)
			require.Equal(t, 1400, res.Interfaces[1].Mtu)
			require.Len(t, res.IPs, 1)
			require.NotNil(t, res.IPs[0].Interface)
			require.Equal(t, 1, *res.IPs[0].Interface)
			require.Equal(t, "10.77.0.1", res.IPs[0].Gateway.String())
			require.Len(t, res.Routes, 1)
			require.Equal(t, "0.0.0.0/0", res.Routes[0].Dst.String())

			// What the result says is what the pod has.
			out, err := inPod(p, "ip", "-o", "addr", "show", "eth0")
			require.NoError(t, err, string(out))
			require.Contains(t, string(out), res.IPs[0].Address.String())
		})
	}
}

// TestDelAfterNetnsGone: the runtime deleted the sandbox first; DEL still removes every
// piece (OVS port, OVN port, address, fast-path entries).
func TestDelAfterNetnsGone(t *testing.T) {
	n := newNode(t)
	for _, v := range specVersions {
		t.Run(v, func(t *testing.T) {
			p := newPod(t, "gone")
			n.mustAdd(t, v, p)
			p.deleteNetns()
			require.NoError(t, n.del(t, v, p))
			require.NoError(t, n.del(t, v, p))
			require.Empty(t, n.leftovers(t))
		})
	}
}

// TestCheckFindsDamage: CHECK names what is missing after each piece is removed behind
// the controller's back.
func TestCheckFindsDamage(t *testing.T) {
	n := newNode(t)
	const v = "1.1.0"
	cases := []struct {
		name   string
		damage func(t *testing.T, p *pod)
		want   string
	}{
		{"host veth", func(t *testing.T, p *pod) {
			out, err := exec.Command("ip", "-n", n.ovn.NetNS, "link", "del", hostIf(p)).CombinedOutput()
			require.NoError(t, err, string(out))
		}, "veth"},
		{"ovs port", func(t *testing.T, p *pod) {
			n.ovn.Vsctl(t, "del-port", n.ovn.Bridge, ovsIf(p))
		}, "ovs port"},
		{"ovs port down", func(t *testing.T, p *pod) {
			out, err := exec.Command("ip", "-n", n.ovn.NetNS, "link", "set", ovsIf(p), "down").CombinedOutput()
			require.NoError(t, err, string(out))
		}, "down"},
		{"ovn port", func(t *testing.T, p *pod) {
			n.ovn.Nbctl(t, "lsp-del", lspName(p))
		}, "logical port"},
		{"pod address", func(t *testing.T, p *pod) {
			out, err := inPod(p, "ip", "addr", "flush", "dev", "eth0")
			require.NoError(t, err, string(out))
		}, "address"},
		{"pod route", func(t *testing.T, p *pod) {
			out, err := inPod(p, "ip", "route", "del", "default")
			require.NoError(t, err, string(out))
		}, "route"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newPod(t, "chk")
			n.mustAdd(t, v, p)
			require.NoError(t, n.check(t, v, p))
			tc.damage(t, p)
			err := n.check(t, v, p)
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
			require.NoError(t, n.del(t, v, p))
			require.Empty(t, n.leftovers(t))
		})
	}
}

// TestGC: GC with a valid set keeps those attachments and removes every other one.
func TestGC(t *testing.T) {
	n := newNode(t)
	const v = "1.1.0"
	keep, drop1, drop2 := newPod(t, "keep"), newPod(t, "drop1"), newPod(t, "drop2")
	ipKeep := n.mustAdd(t, v, keep)
	n.mustAdd(t, v, drop1)
	n.mustAdd(t, v, drop2)
	drop2.deleteNetns() // GC may assume the sandboxes of dropped attachments are gone

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := n.cni().GCNetworkList(ctx, n.confList(t, v), &libcni.GCArgs{ValidAttachments: []types.GCAttachment{{ContainerID: keep.containerID, IfName: keep.ifname}}})
	require.NoError(t, err)

	require.NoError(t, n.check(t, v, keep))
	// Only the kept pod's pieces remain: OVS port, LSP, address, host link, OVS link,
	// two endpoint entries and one destination entry.
	left := n.leftovers(t)
	require.Len(t, left, 8, "%v", left)
	kn := names(keep)
	for _, l := range left[:5] {
		require.True(t, strings.Contains(l, kn.OVSIf) || strings.Contains(l, kn.HostIf) ||
			strings.Contains(l, kn.LSP) || strings.Contains(l, ipKeep.String()), "not the kept pod's: %s", l)
	}
	other := newPod(t, "other")
	ipOther := n.mustAdd(t, v, other)
	ping(t, other, ipKeep)
	_ = ipOther
	require.NoError(t, n.del(t, v, keep))
	require.NoError(t, n.del(t, v, other))
	require.Empty(t, n.leftovers(t))
}

// ping sends three ICMP echo requests from p to dst and requires the replies, each once.
func ping(t *testing.T, p *pod, dst netip.Addr) {
	t.Helper()
	out, err := inPod(p, "ping", "-c", "3", "-i", "0.2", "-W", "2", dst.String())
	require.NoError(t, err, "ping %s from %s:\n%s", dst, p.name, out)
	require.NotContains(t, string(out), "DUP!", "duplicated replies:\n%s", out)
}

// tcpExchange opens a TCP connection from a to b:port and moves data both ways.
func tcpExchange(t *testing.T, a, b *pod, ipB netip.Addr) {
	t.Helper()
	bns, err := ns.GetNS(b.netns)
	require.NoError(t, err)
	defer bns.Close()
	var l net.Listener
	require.NoError(t, bns.Do(func(ns.NetNS) error {
		var err error
		l, err = net.Listen("tcp4", ":7777")
		return err
	}))
	defer l.Close()
	payload := strings.Repeat("sdncni", 200000) // ~1.2 MB: many segments
	errc := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			errc <- err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		got, err := io.ReadAll(io.LimitReader(c, int64(len(payload))))
		if err == nil && string(got) != payload {
			err = errors.New("payload corrupted")
		}
		if err == nil {
			_, err = c.Write([]byte("ok"))
		}
		errc <- err
	}()
	ans, err := ns.GetNS(a.netns)
	require.NoError(t, err)
	defer ans.Close()
	require.NoError(t, ans.Do(func(ns.NetNS) error {
		c, err := net.DialTimeout("tcp4", fmt.Sprintf("%s:7777", ipB), 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := io.WriteString(c, payload); err != nil {
			return err
		}
		buf := make([]byte, 2)
		if _, err := io.ReadFull(c, buf); err != nil {
			return err
		}
		if string(buf) != "ok" {
			return fmt.Errorf("got %q", buf)
		}
		return nil
	}))
	require.NoError(t, <-errc)
}

// cniCode extracts the CNI error code the plugin printed.
func cniCode(t *testing.T, err error) uint {
	t.Helper()
	require.Error(t, err)
	var te *types.Error
	require.True(t, errors.As(err, &te), "not a CNI error: %v", err)
	return te.Code
}
