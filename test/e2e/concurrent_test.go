package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sdncni/sdncni/pkg/cniserver"
)

// TestParallelAddDel: 50 parallel ADDs then 50 parallel DELs: every pod gets its own
// address, every CHECK passes, and nothing is left in OVS, OVN, the address store, the
// node's links or the fast-path maps.
func TestParallelAddDel(t *testing.T) {
	n := newNode(t)
	const count = 50
	pods := make([]*pod, count)
	for i := range pods {
		pods[i] = newPod(t, fmt.Sprintf("par%d", i))
	}
	addrs := make([]netip.Addr, count)
	errs := make([]error, count)
	var wg sync.WaitGroup
	for i, p := range pods {
		wg.Go(func() {
			res, err := n.add(t, "1.1.0", p)
			if err == nil {
				addrs[i], _ = netip.AddrFromSlice(res.IPs[0].Address.IP.To4())
			}
			errs[i] = err
		})
	}
	wg.Wait()
	seen := map[netip.Addr]int{}
	for i := range pods {
		require.NoError(t, errs[i], "ADD %d", i)
		if j, dup := seen[addrs[i]]; dup {
			t.Fatalf("pods %d and %d both got %s", i, j, addrs[i])
		}
		seen[addrs[i]] = i
	}
	// A sample of pairs really talk.
	ping(t, pods[0], addrs[count-1])
	ping(t, pods[count/2], addrs[1])

	for i, p := range pods {
		wg.Go(func() { errs[i] = n.del(t, "1.1.0", p) })
	}
	wg.Wait()
	for i := range pods {
		require.NoError(t, errs[i], "DEL %d", i)
	}
	require.Empty(t, n.leftovers(t))
}

// TestControllerCrash: the controller is SIGKILLed between ADDs and restarted: existing
// pods keep talking (during the outage too), new pods can join, and nothing leaks.
func TestControllerCrash(t *testing.T) {
	n := newNode(t)
	const v = "1.1.0"
	a, b := newPod(t, "crash-a"), newPod(t, "crash-b")
	ipA := n.mustAdd(t, v, a)
	ipB := n.mustAdd(t, v, b)
	ping(t, a, ipB)

	n.killController()
	ping(t, a, ipB) // the datapath does not depend on the controller process
	n.startController()

	require.NoError(t, n.check(t, v, a))
	require.NoError(t, n.check(t, v, b))
	ping(t, b, ipA)
	tcpExchange(t, a, b, ipB)

	c := newPod(t, "crash-c")
	ipC := n.mustAdd(t, v, c)
	require.NotEqual(t, ipA, ipC)
	require.NotEqual(t, ipB, ipC)
	ping(t, c, ipA)

	for _, p := range []*pod{a, b, c} {
		require.NoError(t, n.del(t, v, p))
	}
	require.Empty(t, n.leftovers(t))
}

// TestRestartRemovesHalfMade: a crash in the middle of ADD leaves pieces without an
// attachment (here: an address and an OVS port with our marks but no veth); the next
// start removes them.
func TestRestartRemovesHalfMade(t *testing.T) {
	n := newNode(t)
	p := newPod(t, "half")
	n.mustAdd(t, "1.1.0", p)
	n.killController()
	// The veth vanishing (sandbox gone) while the controller is down leaves the rest
	// half-made.
	p.deleteNetns()
	n.startController()
	require.Empty(t, n.leftovers(t))
}

// TestRestartRecoversLostStore: the operator moved a corrupt address store aside while
// pods run; the restarted controller takes their addresses back from the OVN ports, so
// a new pod never gets a running pod's address.
func TestRestartRecoversLostStore(t *testing.T) {
	n := newNode(t, withCIDR("10.79.0.0/29")) // five pod addresses: reuse would show at once
	a, b := newPod(t, "keep-a"), newPod(t, "keep-b")
	ipA := n.mustAdd(t, "1.1.0", a)
	ipB := n.mustAdd(t, "1.1.0", b)
	n.killController()
	require.NoError(t, os.Rename(n.store, n.store+".corrupt"))
	n.startController()

	require.NoError(t, n.check(t, "1.1.0", a))
	require.NoError(t, n.check(t, "1.1.0", b))
	var fresh []*pod
	for i := range 3 {
		p := newPod(t, fmt.Sprintf("fresh%d", i))
		ip := n.mustAdd(t, "1.1.0", p)
		require.NotEqual(t, ipA, ip)
		require.NotEqual(t, ipB, ip)
		fresh = append(fresh, p)
	}
	ping(t, a, ipB)
	for _, p := range append(fresh, a, b) {
		require.NoError(t, n.del(t, "1.1.0", p))
	}
	require.Empty(t, n.leftovers(t))
}

// TestDelWithCorruptStore: with the address store corrupt, DEL still removes the pod
// (veth, OVS and OVN ports, map entries) and succeeds, so the pod does not stay
// Terminating; ADD keeps failing with 102, so no address can be handed out twice; after
// the operator moves the store aside the node serves again.
func TestDelWithCorruptStore(t *testing.T) {
	n := newNode(t)
	a, b := newPod(t, "corrupt-a"), newPod(t, "corrupt-b")
	n.mustAdd(t, "1.1.0", a)
	require.NoError(t, os.WriteFile(n.store, []byte(`{"truncated`), 0o600))

	require.NoError(t, n.del(t, "1.1.0", a), "DEL must succeed with a corrupt store")
	require.NoError(t, n.del(t, "1.1.0", a), "and again")
	_, err := n.add(t, "1.1.0", b)
	require.Equal(t, cniserver.CodeStoreCorrupt, cniCode(t, err), "ADD must not allocate from a corrupt store")

	n.killController()
	require.NoError(t, os.Rename(n.store, n.store+".corrupt"))
	n.startController()
	require.Empty(t, n.leftovers(t), "DEL left pieces of the pod")
	n.mustAdd(t, "1.1.0", b)
	require.NoError(t, n.del(t, "1.1.0", b))
	require.Empty(t, n.leftovers(t))
}
