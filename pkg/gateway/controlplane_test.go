package gateway

import (
	"net/netip"
	"testing"

	"github.com/sdncni/sdncni/internal/testenv"
)

// TestControlPlaneReachesPods: the pod echoes UDP. From the node network, the API
// server's address (203.0.113.10) reaches it only when it is in the control-plane CIDRs;
// any other address on the node network (198.18.0.2, e.g. another node, where a tenant's
// egress would come from) never does.
func TestControlPlaneReachesPods(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "ip", "nsenter")
	g := newGWTopo(t)
	g.ip(g.world, "addr", "add", "203.0.113.10/32", "dev", "lo")
	g.ip(g.node, "route", "add", "203.0.113.10/32", "via", "198.18.0.2")
	g.ip(g.world, "route", "add", "10.1.0.0/24", "via", "198.18.0.1")
	g.echo(g.pod, "10.1.0.5:5300")

	g.table(Filter{})
	if g.answered(g.world, "203.0.113.10", "10.1.0.5:5300") {
		t.Fatal("without control-plane CIDRs nothing may enter a pod from the node network")
	}
	g.table(Filter{ControlPlane: []netip.Prefix{netip.MustParsePrefix("203.0.113.10/32")}})
	if !g.answered(g.world, "203.0.113.10", "10.1.0.5:5300") {
		t.Fatal("the API server does not reach the node's pod")
	}
	if g.answered(g.world, "198.18.0.2", "10.1.0.5:5300") {
		t.Fatal("another source on the node network reached the pod")
	}
}
