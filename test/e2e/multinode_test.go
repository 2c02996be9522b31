package e2e

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sdncni/sdncni/internal/testenv"
)

// TestMultiNode runs two simulated nodes (testenv.StartCluster: one OVN central, a netns
// per node with its own ovs-vswitchd, ovn-controller and our controller, Geneve over an
// underlay with a 1500-byte MTU) serving one network with disjoint allocation ranges.
// Pods on different nodes reach each other through the tunnel; the controllers chose the
// pod MTU and the OVS ports' tx offload from the topology, and the pods keep theirs (the
// kernel segments at the OVS port, before OVS's Geneve, which cannot); GC and restart
// reconciliation on one node leave the other node's pods alone.
func TestMultiNode(t *testing.T) {
	const (
		v    = "1.1.0"
		cidr = "10.78.0.0/24"
		mb   = 1 << 20
	)
	c := testenv.StartCluster(t, 2)
	n1 := newClusterNode(t, c.Nodes[0], cidr, "10.78.0.0/25")
	n2 := newClusterNode(t, c.Nodes[1], cidr, "10.78.0.128/25")

	a1, b1, a2 := newMNPod(t, "a1"), newMNPod(t, "b1"), newMNPod(t, "a2")
	ipA1, ipB1, ipA2 := n1.mustAdd(t, v, a1), n1.mustAdd(t, v, b1), n2.mustAdd(t, v, a2)
	require.True(t, ipA1.Less(ipA2) && ipB1.Less(ipA2), "node1 allocates from .0/25, node2 from .128/25: %s %s %s", ipA1, ipB1, ipA2)
	require.GreaterOrEqual(t, ipA2.As4()[3], byte(128))

	t.Run("topology sets MTU and tx offload", func(t *testing.T) {
		// 1500-byte underlay minus Geneve's 58; the pods keep tx offload and TSO, their OVS
		// ports have them off (userspace datapath, a real tunnel endpoint). Read back with
		// ip and ethtool.
		for i, p := range []*pod{a1, b1, a2} {
			require.Equal(t, podLinkInfo{MTU: 1442, TxChecksum: true, TSO: true}, podLink(t, p), p.name)
			n := []*node{n1, n1, n2}[i]
			require.Equal(t, podLinkInfo{MTU: 1442, TxChecksum: false, TSO: false}, ovsPortLink(t, n, p), p.name+"'s OVS port")
		}
	})

	t.Run("cross-node ping", func(t *testing.T) {
		waitPing(t, a1, ipA2, 15*time.Second)
		waitPing(t, a2, ipA1, 15*time.Second)
		rtt := pingRTT(t, a1, ipA2, 20, 56, false)
		t.Logf("cross-node ping RTT avg %v", rtt)
		// The largest packet the MTU allows crosses unfragmented (DF), both ways.
		pingRTT(t, a1, ipA2, 3, 1442-28, true)
		pingRTT(t, a2, ipB1, 3, 1442-28, true)
	})

	t.Run("cross-node TCP", func(t *testing.T) {
		gbps := tcpTransfer(t, a1, a2, ipA2, 7801, 16*mb, 60*time.Second)
		t.Logf("cross-node TCP 16 MiB node1→node2: %.2f Gbit/s", gbps)
		gbps = tcpTransfer(t, a2, b1, ipB1, 7802, 16*mb, 60*time.Second)
		t.Logf("cross-node TCP 16 MiB node2→node1: %.2f Gbit/s", gbps)
	})

	t.Run("same-node", func(t *testing.T) {
		waitPing(t, a1, ipB1, 10*time.Second)
		rtt := pingRTT(t, a1, ipB1, 20, 56, false)
		gbps := tcpTransfer(t, b1, a1, ipA1, 7803, 16*mb, 60*time.Second)
		t.Logf("same-node (pods' tx offload on) ping RTT avg %v, TCP 16 MiB %.2f Gbit/s", rtt, gbps)
	})

	t.Run("GC and restart on node1 spare node2", func(t *testing.T) {
		node2Ports := lspsOfNode(t, c, c.Nodes[1].SystemID)
		require.Equal(t, []string{lspName(a2)}, node2Ports, c.Nbctl(t, "--format=json", "--columns=name,external_ids", "list", "Logical_Switch_Port"))
		// GC on node1 with only a1 valid: b1 goes, a2 (node2's) is not node1's to judge.
		// libcni's GC also DELs every cached attachment of the network it is not told to
		// keep, and the simulated nodes share this machine's libcni cache: node1's
		// controller gets a DEL for a2 too, and must leave node2's port alone.
		gcNode(t, n1, v, a1)
		require.Equal(t, []string{lspName(a1)}, lspsOfNode(t, c, c.Nodes[0].SystemID))
		require.Equal(t, node2Ports, lspsOfNode(t, c, c.Nodes[1].SystemID))
		// Restart reconciliation on node1 (it lists every OVN port) keeps them too.
		n1.restartController(n1.extra...)
		require.Equal(t, node2Ports, lspsOfNode(t, c, c.Nodes[1].SystemID))
		require.NoError(t, n2.check(t, v, a2))
		waitPing(t, a1, ipA2, 10*time.Second)
		pingRTT(t, a2, ipA1, 5, 56, false)
	})

	t.Run("delete leaves nothing", func(t *testing.T) {
		require.NoError(t, n1.del(t, v, a1))
		require.NoError(t, n1.del(t, v, b1)) // already GC'd: idempotent
		require.NoError(t, n2.del(t, v, a2))
		require.Empty(t, podLeftovers(t, n1))
		require.Empty(t, podLeftovers(t, n2))
	})
}
