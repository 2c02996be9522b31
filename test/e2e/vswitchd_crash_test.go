package e2e

import (
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sdncni/sdncni/internal/testenv"
)

// TestVswitchdCrashMultiNode: node 1's ovs-vswitchd aborting, as Debian 12's OVS 3.1.0
// does under connection churn (docs/deploy.md, "ovs-vswitchd crashes"), interrupts
// cross-node pod traffic (OVN's Geneve, through ovs-vswitchd on both nodes) only until
// hack/dev-env.sh's supervisor has started it again; the pod's OVS port is still whole.
func TestVswitchdCrashMultiNode(t *testing.T) {
	const v = "1.1.0"
	c := testenv.StartCluster(t, 2)
	n1 := newClusterNode(t, c.Nodes[0], "10.78.0.0/24", "10.78.0.0/25")
	n2 := newClusterNode(t, c.Nodes[1], "10.78.0.0/24", "10.78.0.128/25")
	a1, a2 := newMNPod(t, "a1"), newMNPod(t, "a2")
	ipA1, ipA2 := n1.mustAdd(t, v, a1), n2.mustAdd(t, v, a2)
	waitPing(t, a1, ipA2, 15*time.Second)
	waitPing(t, a2, ipA1, 15*time.Second)

	c.Nodes[0].CrashVswitchd(t, syscall.SIGABRT)
	restarted := time.Now()
	waitPing(t, a1, ipA2, 30*time.Second)
	waitPing(t, a2, ipA1, 30*time.Second)
	t.Logf("cross-node ping back %v after the restart", time.Since(restarted).Round(time.Millisecond))
	pingRTT(t, a1, ipA2, 5, 56, false)
	require.NoError(t, n1.check(t, v, a1))
	require.NoError(t, n1.del(t, v, a1))
	require.NoError(t, n2.del(t, v, a2))
	require.Empty(t, podLeftovers(t, n1))
}
