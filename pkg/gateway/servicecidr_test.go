package gateway

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sdncni/sdncni/internal/testenv"
)

// TestServiceCIDRStaysOnNode: the pod sends UDP to a ClusterIP that no shared Service
// DNATs. The node's default route leads to the world, which happens to hold that address.
// With the table written without service CIDRs the node forwards and masquerades the
// packet and the world answers (control); with the service CIDR configured the node drops
// it, while ordinary egress still works.
func TestServiceCIDRStaysOnNode(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "ip", "nsenter")
	g := newGWTopo(t)
	g.ip(g.world, "addr", "add", "10.96.0.10/32", "dev", "lo")
	g.ip(g.node, "route", "add", "default", "via", "198.18.0.2")
	// The world echoes on both its addresses (one socket each, so each answer leaves from
	// the address that was asked).
	g.echo(g.world, "10.96.0.10:5300")
	g.echo(g.world, "198.18.0.2:5300")

	g.table(Filter{})
	require.True(t, g.answered(g.pod, "", "10.96.0.10:5300"), "control: without a service CIDR the node forwards the ClusterIP out")
	g.table(Filter{ServiceCIDRs: []netip.Prefix{netip.MustParsePrefix("10.96.0.0/12")}})
	require.False(t, g.answered(g.pod, "", "10.96.0.10:5300"), "a ClusterIP nobody DNATed must not leave the node")
	require.True(t, g.answered(g.pod, "", "198.18.0.2:5300"), "egress is untouched")
}
