package ovs_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sdncni/sdncni/pkg/ovs"
)

func mac(b4, b5 byte) net.HardwareAddr { return net.HardwareAddr{0x0a, 0x58, 0x0a, 0x63, b4, b5} }

func ips(s ...string) []netip.Addr {
	out := make([]netip.Addr, len(s))
	for i, a := range s {
		out[i] = netip.MustParseAddr(a)
	}
	return out
}

func testNetwork(name string) ovs.Network {
	return ovs.Network{
		Name:        name,
		Subnets:     []netip.Prefix{netip.MustParsePrefix("10.99.0.0/16")},
		GatewayMAC:  mac(0, 1),
		Gateways:    []netip.Prefix{netip.MustParsePrefix("10.99.0.1/16")},
		ExternalIDs: map[string]string{"sdncni.io/test": "yes"},
	}
}

// ensureNetwork creates network name and deletes it when the test ends.
func ensureNetwork(t *testing.T, n *ovs.Northbound, name string) {
	t.Helper()
	require.NoError(t, n.EnsureNetwork(testCtx(t), testNetwork(name)))
	t.Cleanup(func() { require.NoError(t, n.DeleteNetwork(context.Background(), name)) })
}

// find returns the non-empty lines of 'ovn-nbctl --bare --columns=COL find TABLE COND'.
func find(t *testing.T, nbctl func(testing.TB, ...string) string, col, table string, cond ...string) []string {
	t.Helper()
	out := nbctl(t, append([]string{"--bare", "--columns=" + col, "find", table}, cond...)...)
	return strings.Fields(out)
}

func TestEnsureNetwork(t *testing.T) {
	o, n := newNorthbound(t)
	ctx := testCtx(t)
	const name = "ovst-net"
	ensureNetwork(t, n, name)
	show := o.Nbctl(t, "show")
	require.NoError(t, n.EnsureNetwork(ctx, testNetwork(name)), "second ensure")
	require.Equal(t, show, o.Nbctl(t, "show"), "second ensure changes nothing")

	require.Len(t, find(t, o.Nbctl, "_uuid", "Logical_Switch", "name="+ovs.SwitchName(name)), 1)
	require.Len(t, find(t, o.Nbctl, "_uuid", "Logical_Router", "name="+ovs.RouterName(name)), 1)
	lrp := ovs.RouterPortName(name)
	require.Equal(t, "0a:58:0a:63:00:01", unquote(o.Nbctl(t, "get", "Logical_Router_Port", lrp, "mac")))
	require.Equal(t, `["10.99.0.1/16"]`, o.Nbctl(t, "get", "Logical_Router_Port", lrp, "networks"))
	require.Contains(t, o.Nbctl(t, "lrp-list", ovs.RouterName(name)), "("+lrp+")")
	lsp := ovs.SwitchRouterPortName(name)
	require.Equal(t, "router", o.Nbctl(t, "lsp-get-type", lsp))
	require.Equal(t, "[router]", o.Nbctl(t, "get", "Logical_Switch_Port", lsp, "addresses"))
	require.Equal(t, "router-port="+lrp, o.Nbctl(t, "lsp-get-options", lsp))
	require.Contains(t, o.Nbctl(t, "lsp-get-ls", lsp), "("+ovs.SwitchName(name)+")")
	for _, table := range []string{"Logical_Switch", "Logical_Switch_Port", "Logical_Router", "Logical_Router_Port"} {
		require.Len(t, find(t, o.Nbctl, "_uuid", table, `external_ids:"sdncni.io/network"=`+name), 1, table)
		require.Len(t, find(t, o.Nbctl, "_uuid", table, `external_ids:"sdncni.io/owner"=sdncni`, `external_ids:"sdncni.io/network"=`+name), 1, table)
	}

	// A changed gateway is applied in place.
	changed := testNetwork(name)
	changed.GatewayMAC = mac(0, 2)
	require.NoError(t, n.EnsureNetwork(ctx, changed))
	require.Equal(t, "0a:58:0a:63:00:02", unquote(o.Nbctl(t, "get", "Logical_Router_Port", lrp, "mac")))

	// A part deleted behind our back is recreated.
	o.Nbctl(t, "lsp-del", lsp)
	require.Eventually(t, func() bool {
		_, err := n.GetLogicalPort(ctx, lsp)
		return errors.Is(err, ovs.ErrNotFound)
	}, 10*time.Second, 10*time.Millisecond, "the client's cache sees the deletion")
	require.NoError(t, n.EnsureNetwork(ctx, testNetwork(name)))
	require.Equal(t, "router", o.Nbctl(t, "lsp-get-type", lsp))

	bad := testNetwork(name)
	bad.Gateways = []netip.Prefix{netip.MustParsePrefix("10.99.0.0/16")}
	require.Error(t, n.EnsureNetwork(ctx, bad))
}

func TestLogicalPortLifecycle(t *testing.T) {
	o, n := newNorthbound(t)
	ctx := testCtx(t)
	const network = "ovst-lsp"
	ensureNetwork(t, n, network)
	lp := ovs.LogicalPort{Name: "ovst-lsp-a", MAC: mac(1, 5), IPs: ips("10.99.1.5"), Owner: owner("c-lsp-a")}
	require.NoError(t, n.AddLogicalPort(ctx, network, lp))
	require.NoError(t, n.AddLogicalPort(ctx, network, lp), "idempotent")

	require.Equal(t, "0a:58:0a:63:01:05 10.99.1.5", o.Nbctl(t, "lsp-get-addresses", lp.Name))
	require.Equal(t, "0a:58:0a:63:01:05 10.99.1.5", o.Nbctl(t, "lsp-get-port-security", lp.Name))
	require.Contains(t, o.Nbctl(t, "lsp-get-ls", lp.Name), "("+ovs.SwitchName(network)+")")
	require.Equal(t, "c-lsp-a", unquote(o.Nbctl(t, "get", "Logical_Switch_Port", lp.Name, `external_ids:"sdncni.io/container-id"`)))

	info, err := n.GetLogicalPort(ctx, lp.Name)
	require.NoError(t, err)
	require.Equal(t, network, info.Network)
	require.Equal(t, lp.MAC, info.MAC)
	require.Equal(t, lp.IPs, info.IPs)
	want := lp.Owner
	want.Network = network
	require.Equal(t, want, info.Owner)

	list, err := n.ListOwnedLogicalPorts(ctx)
	require.NoError(t, err)
	var names []string
	for _, p := range list {
		names = append(names, p.Name)
	}
	require.Contains(t, names, lp.Name)
	require.NotContains(t, names, ovs.SwitchRouterPortName(network), "router ports are not pod ports")

	tests := []struct {
		name   string
		change func(*ovs.LogicalPort)
	}{
		{"other container", func(p *ovs.LogicalPort) { p.Owner.ContainerID = "c-other" }},
		{"other address", func(p *ovs.LogicalPort) { p.IPs = ips("10.99.1.6") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := lp
			tt.change(&q)
			require.ErrorIs(t, n.AddLogicalPort(ctx, network, q), ovs.ErrConflict)
		})
	}
	require.ErrorIs(t, n.AddLogicalPort(ctx, "ovst-nonet", ovs.LogicalPort{Name: "ovst-x", MAC: mac(1, 9)}), ovs.ErrNotFound)

	require.NoError(t, n.DeleteLogicalPort(ctx, network, lp.Name))
	require.Empty(t, find(t, o.Nbctl, "_uuid", "Logical_Switch_Port", "name="+lp.Name))
	_, err = n.GetLogicalPort(ctx, lp.Name)
	require.ErrorIs(t, err, ovs.ErrNotFound)
	require.NoError(t, n.DeleteLogicalPort(ctx, network, lp.Name), "idempotent")
}

func TestDeleteNetworkRemovesEverything(t *testing.T) {
	o, n := newNorthbound(t)
	ctx := testCtx(t)
	const network = "ovst-del"
	require.NoError(t, n.EnsureNetwork(ctx, testNetwork(network)))
	for i, name := range []string{"ovst-del-a", "ovst-del-b"} {
		require.NoError(t, n.AddLogicalPort(ctx, network, ovs.LogicalPort{
			Name: name, MAC: mac(2, byte(i)), IPs: ips("10.99.2.1"), Owner: owner(name),
		}))
	}
	// A port someone else put on our switch goes with it too.
	o.Nbctl(t, "lsp-add", ovs.SwitchName(network), "ovst-del-foreign")

	require.NoError(t, n.DeleteNetwork(ctx, network))
	require.NoError(t, n.DeleteNetwork(ctx, network), "idempotent")
	require.NotContains(t, o.Nbctl(t, "show"), network)
	for _, table := range []string{"Logical_Switch", "Logical_Switch_Port", "Logical_Router", "Logical_Router_Port"} {
		require.Empty(t, find(t, o.Nbctl, "_uuid", table, `external_ids:"sdncni.io/network"=`+network), table)
	}
	require.Empty(t, find(t, o.Nbctl, "_uuid", "Logical_Switch_Port", "name=ovst-del-foreign"))
}

// TestOVNInstalled proves the whole chain of the environment: NB port → northd → SB →
// ovn-controller in the node netns binds the OVS interface and marks it installed.
func TestOVNInstalled(t *testing.T) {
	o, v := newVSwitch(t)
	_, n := newNorthbound(t)
	ctx := testCtx(t)
	const network = "ovst-inst"
	ensureNetwork(t, n, network)
	lp := ovs.LogicalPort{Name: "ovst-inst-lsp", MAC: mac(3, 1), IPs: ips("10.99.3.1"), Owner: owner("c-inst")}
	require.NoError(t, n.AddLogicalPort(ctx, network, lp))
	p := ovs.Port{Name: "ovst-inst0", Type: "internal", IfaceID: lp.Name, Owner: owner("c-inst")}
	addPort(t, v, o.Bridge, p)

	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	start := time.Now()
	require.NoError(t, v.WaitOVNInstalled(wctx, p.Name))
	t.Logf("ovn-installed after %v", time.Since(start))
	info, err := v.GetPort(ctx, p.Name)
	require.NoError(t, err)
	require.True(t, info.OVNInstalled)
	require.Equal(t, "true", unquote(o.Vsctl(t, "get", "Interface", p.Name, "external_ids:ovn-installed")))
	require.Contains(t, o.Sbctl(t, "--bare", "--columns=logical_port", "find", "Port_Binding", "chassis!=[]"), lp.Name)
	require.Eventually(t, func() bool {
		info, err := n.GetLogicalPort(ctx, lp.Name)
		return err == nil && info.Up
	}, 15*time.Second, 50*time.Millisecond, "northd reports the port up")
}

// unquote strips the quotes ovs-vsctl/ovn-nbctl put around some string values.
func unquote(s string) string { return strings.Trim(s, `"`) }
