package tunnelneigh

import (
	"context"
	"net"
	"net/netip"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"

	"github.com/sdncni/sdncni/internal/testenv"
)

// TestKeeper: in a node netns joined by a veth to a peer netns, the Keeper makes the
// entries of a directly connected peer and of the gateway of a routed one managed; the
// kernel resolves them without any traffic; an unroutable peer is skipped; the entries
// go when their peers do, and an entry the Keeper did not make stays.
func TestKeeper(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "ip")
	node, peer := testenv.NetNS(t, "node"), testenv.NetNS(t, "peer")
	ip := func(n ns.NetNS, args ...string) {
		t.Helper()
		out, err := exec.Command("ip", append([]string{"-n", nsName(n)}, args...)...).CombinedOutput()
		require.NoError(t, err, string(out))
	}
	ip(node, "link", "add", "tn0", "type", "veth", "peer", "name", "tn1", "netns", nsName(peer))
	ip(node, "addr", "add", "10.210.0.1/24", "dev", "tn0")
	ip(node, "link", "set", "tn0", "up")
	ip(node, "route", "add", "10.211.0.0/24", "via", "10.210.0.254")
	ip(node, "neigh", "add", "10.210.0.7", "lladdr", "0a:00:00:00:00:07", "dev", "tn0", "nud", "permanent")
	ip(peer, "addr", "add", "10.210.0.2/24", "dev", "tn1")
	ip(peer, "addr", "add", "10.210.0.254/24", "dev", "tn1")
	ip(peer, "link", "set", "tn1", "up")
	var peerMAC net.HardwareAddr
	require.NoError(t, peer.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName("tn1")
		peerMAC = l.Attrs().HardwareAddr
		return err
	}))

	var mu sync.Mutex
	remotes := []netip.Addr{netip.MustParseAddr("10.210.0.2"), netip.MustParseAddr("10.211.0.9"),
		netip.MustParseAddr("10.212.0.1")} // the last has no route
	k := New(func(context.Context) ([]netip.Addr, error) {
		mu.Lock()
		defer mu.Unlock()
		return remotes, nil
	})
	ctx := context.Background()
	var link int
	entries := func() map[string]netlink.Neigh {
		got := map[string]netlink.Neigh{}
		require.NoError(t, node.Do(func(ns.NetNS) error {
			l, err := netlink.LinkByName("tn0")
			if err != nil {
				return err
			}
			link = l.Attrs().Index
			ns, err := netlink.NeighList(link, netlink.FAMILY_V4)
			for _, n := range ns {
				got[n.IP.String()] = n
			}
			return err
		}))
		return got
	}
	require.NoError(t, node.Do(func(ns.NetNS) error { return k.Sync(ctx) }))
	// Resolved by the kernel alone: nothing was sent to either peer.
	require.Eventually(t, func() bool {
		got := entries()
		for _, ip := range []string{"10.210.0.2", "10.210.0.254"} {
			n, ok := got[ip]
			if !ok || n.FlagsExt&netlink.NTF_EXT_MANAGED == 0 || n.State != netlink.NUD_REACHABLE ||
				n.HardwareAddr.String() != peerMAC.String() {
				return false
			}
		}
		return true
	}, 10*time.Second, 50*time.Millisecond, "managed, resolved entries: %v", entries())
	require.Len(t, entries(), 3, "the two peers' next hops and the permanent entry: %v", entries())
	// Idempotent.
	require.NoError(t, node.Do(func(ns.NetNS) error { return k.Sync(ctx) }))
	require.Len(t, entries(), 3)

	// The directly connected peer goes: its entry goes, the routed one's gateway stays.
	mu.Lock()
	remotes = remotes[1:]
	mu.Unlock()
	require.NoError(t, node.Do(func(ns.NetNS) error { return k.Sync(ctx) }))
	got := entries()
	require.NotContains(t, got, "10.210.0.2")
	require.Contains(t, got, "10.210.0.254")
	// Every peer gone: only the entry it did not make is left.
	mu.Lock()
	remotes = nil
	mu.Unlock()
	require.NoError(t, node.Do(func(ns.NetNS) error { return k.Sync(ctx) }))
	got = entries()
	require.Len(t, got, 1, "%v", got)
	require.Equal(t, netlink.NUD_PERMANENT, got["10.210.0.7"].State)
}

func nsName(n ns.NetNS) string { return n.Path()[len("/run/netns/"):] }
