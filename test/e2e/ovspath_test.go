package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestNewPodsReachableAtOnceOverOVS: with the fast path off, a pod is reachable through
// OVS as soon as ADD returns, every time. (ovs-vswitchd once took a just-raised OVS port
// back down while adding it, about once in 50 ADDs: the pod's first connection timed out
// and its port stayed down for good.)
func TestNewPodsReachableAtOnceOverOVS(t *testing.T) {
	n := newNode(t, withControllerArgs("--fast-path=false"))
	const rounds = 40
	for i := range rounds {
		a, b := newPod(t, fmt.Sprintf("a%d", i)), newPod(t, fmt.Sprintf("b%d", i))
		n.mustAdd(t, "1.1.0", a)
		ipB := n.mustAdd(t, "1.1.0", b)
		require.NoError(t, n.check(t, "1.1.0", b), "round %d", i)
		serveBanner(t, b)
		got, err := banner(a, ipB, 3*time.Second)
		require.NoError(t, err, "round %d: first connection to a new pod", i)
		require.Equal(t, b.name, got)
		require.NoError(t, n.del(t, "1.1.0", a))
		require.NoError(t, n.del(t, "1.1.0", b))
		a.deleteNetns()
		b.deleteNetns()
	}
	require.Empty(t, n.leftovers(t))
}
