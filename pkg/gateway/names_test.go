package gateway

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sdncni/sdncni/pkg/attach"
)

func TestNamesFor(t *testing.T) {
	a, b := NamesFor("red", "node-1"), NamesFor("red", "node-2")
	require.NotEqual(t, a, b)
	require.Equal(t, a, NamesFor("red", "node-1"))
	for _, n := range []Names{a, b, NamesFor("blue", "node-1")} {
		require.Len(t, n.Port, 15, "fits IFNAMSIZ")
		require.True(t, strings.HasPrefix(n.Port, PortPrefix))
		require.False(t, attach.IsOurLink(n.Port), "pod GC must not take a management port for a pod link")
		require.True(t, strings.HasPrefix(n.LSP, "sdncni-mp-"))
	}
	require.True(t, strings.HasPrefix(addrOwner("red").ContainerID, attach.NodeOwnerPrefix))
	o := rowOwner("red", "node-1")
	require.Equal(t, Role, o.Role)
	require.Equal(t, "node-1", o.Node)
}
