package ovs_test

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sdncni/sdncni/pkg/ovs"
)

// addPort adds p and deletes it when the test ends.
func addPort(t *testing.T, v *ovs.VSwitch, bridge string, p ovs.Port) {
	t.Helper()
	require.NoError(t, v.AddPort(testCtx(t), bridge, p))
	t.Cleanup(func() {
		require.NoError(t, v.DeletePort(context.Background(), bridge, p.Name))
	})
}

func owner(ctr string) ovs.Owner {
	return ovs.Owner{PodNamespace: "ns1", PodName: "pod-" + ctr, ContainerID: ctr, IfName: "eth0", Network: "blue"}
}

func TestEnsureBridge(t *testing.T) {
	o, v := newVSwitch(t)
	ctx := testCtx(t)
	const br = "br-ovst"
	t.Cleanup(func() { o.Vsctl(t, "--if-exists", "del-br", br) })

	for range 2 {
		require.NoError(t, v.EnsureBridge(ctx, br, "netdev"))
		require.Equal(t, "netdev", o.Vsctl(t, "get", "Bridge", br, "datapath_type"))
		require.Equal(t, "secure", o.Vsctl(t, "get", "Bridge", br, "fail_mode"))
		require.Empty(t, o.Vsctl(t, "list-ports", br), "only the bridge's own port, which list-ports hides")
	}
	require.Contains(t, strings.Fields(o.Vsctl(t, "list-br")), br)

	// A drifted bridge is put back (once the client's cache has seen the drift).
	o.Vsctl(t, "set", "Bridge", br, "fail_mode=standalone")
	require.Eventually(t, func() bool {
		require.NoError(t, v.EnsureBridge(ctx, br, "netdev"))
		return o.Vsctl(t, "get", "Bridge", br, "fail_mode") == "secure"
	}, 10*time.Second, 20*time.Millisecond)

	// The pre-existing integration bridge is accepted as is.
	require.NoError(t, v.EnsureBridge(ctx, o.Bridge, "netdev"))
}

func TestPortLifecycle(t *testing.T) {
	o, v := newVSwitch(t)
	ctx := testCtx(t)
	p := ovs.Port{Name: "ovst-life0", IfaceID: "lsp-life0", Owner: owner("c-life0"), MTU: 1400}
	addPort(t, v, o.Bridge, p)

	// What OVS itself sees.
	require.Equal(t, o.Bridge, o.Vsctl(t, "port-to-br", p.Name))
	require.Equal(t, "lsp-life0", unquote(o.Vsctl(t, "get", "Interface", p.Name, "external_ids:iface-id")))
	require.Equal(t, "c-life0", unquote(o.Vsctl(t, "get", "Interface", p.Name, `external_ids:"sdncni.io/container-id"`)))
	require.Equal(t, "sdncni", unquote(o.Vsctl(t, "get", "Port", p.Name, `external_ids:"sdncni.io/owner"`)))
	require.Equal(t, "1400", o.Vsctl(t, "get", "Interface", p.Name, "mtu_request"))

	info, err := v.GetPort(ctx, p.Name)
	require.NoError(t, err)
	require.Equal(t, p.Name, info.Name)
	require.Equal(t, p.IfaceID, info.IfaceID)
	require.Equal(t, p.Owner, info.Owner)

	owned, err := v.ListOwnedPorts(ctx)
	require.NoError(t, err)
	require.Contains(t, portNames(owned), p.Name)
	require.NotContains(t, portNames(owned), o.Bridge, "the bridge's own port is not a pod port")

	require.NoError(t, v.DeletePort(ctx, o.Bridge, p.Name))
	require.NotContains(t, strings.Fields(o.Vsctl(t, "list-ports", o.Bridge)), p.Name)
	require.Empty(t, o.Vsctl(t, "--bare", "--columns=name", "find", "Interface", "name="+p.Name))
	_, err = v.GetPort(ctx, p.Name)
	require.ErrorIs(t, err, ovs.ErrNotFound)
	require.NoError(t, v.DeletePort(ctx, o.Bridge, p.Name), "delete is idempotent")
}

func TestAddPortIdempotentAndConflict(t *testing.T) {
	o, v := newVSwitch(t)
	ctx := testCtx(t)
	p := ovs.Port{Name: "ovst-idem0", IfaceID: "lsp-idem0", Owner: owner("c-idem0")}
	addPort(t, v, o.Bridge, p)
	require.NoError(t, v.AddPort(ctx, o.Bridge, p), "same port, same owner")

	tests := []struct {
		name   string
		change func(*ovs.Port)
	}{
		{"other container", func(p *ovs.Port) { p.Owner.ContainerID = "c-other" }},
		{"other iface-id", func(p *ovs.Port) { p.IfaceID = "lsp-other" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := p
			tt.change(&q)
			require.ErrorIs(t, v.AddPort(ctx, o.Bridge, q), ovs.ErrConflict)
		})
	}

	// A port someone else made is neither taken over nor deleted.
	o.Vsctl(t, "add-port", o.Bridge, "ovst-foreign", "--", "set", "Interface", "ovst-foreign", "type=internal")
	t.Cleanup(func() { o.Vsctl(t, "--if-exists", "del-port", "ovst-foreign") })
	require.ErrorIs(t, v.AddPort(ctx, o.Bridge, ovs.Port{Name: "ovst-foreign", Owner: owner("c-f")}), ovs.ErrConflict)
	require.ErrorIs(t, v.DeletePort(ctx, o.Bridge, "ovst-foreign"), ovs.ErrConflict)

	require.ErrorIs(t, v.AddPort(ctx, "br-missing", ovs.Port{Name: "ovst-nobr", Owner: owner("c-nobr")}), ovs.ErrNotFound)
	require.Error(t, v.AddPort(ctx, o.Bridge, ovs.Port{Name: "ovst-bad", Type: "patch"}))
}

func TestInternalPortTapInNodeNetns(t *testing.T) {
	o, v := newVSwitch(t)
	p := ovs.Port{Name: "ovst-tap0", Type: "internal", IfaceID: "lsp-tap0", Owner: owner("c-tap0")}
	addPort(t, v, o.Bridge, p)

	// ovs-vswitchd runs in the node netns, so its taps appear there and not in the root.
	require.Eventually(t, func() bool {
		return exec.Command("ip", "-n", o.NetNS, "link", "show", p.Name).Run() == nil
	}, 10*time.Second, 50*time.Millisecond)
	require.Error(t, exec.Command("ip", "link", "show", p.Name).Run())
	require.Eventually(t, func() bool {
		info, err := v.GetPort(testCtx(t), p.Name)
		return err == nil && info.OFPort > 0
	}, 10*time.Second, 50*time.Millisecond, "ovs-vswitchd assigns an ofport")

	require.NoError(t, v.DeletePort(testCtx(t), o.Bridge, p.Name))
	require.Eventually(t, func() bool {
		return exec.Command("ip", "-n", o.NetNS, "link", "show", p.Name).Run() != nil
	}, 10*time.Second, 50*time.Millisecond, "tap goes away with the port")
}

func TestConcurrentAddPort(t *testing.T) {
	o, v := newVSwitch(t)
	_, n := newNorthbound(t)
	ctx := testCtx(t)
	const network, count = "ovst-conc", 50
	ensureNetwork(t, n, network)

	var wg sync.WaitGroup
	errs := make(chan error, 2*count)
	for i := range count {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("ovst-c%02d", i)
			own := owner(name)
			lp := ovs.LogicalPort{Name: "lsp-" + name, MAC: mac(0x30, byte(i)), IPs: ips(fmt.Sprintf("10.99.1.%d", i+10)), Owner: own}
			if err := n.AddLogicalPort(ctx, network, lp); err != nil {
				errs <- err
				return
			}
			// Half of them race an identical second AddPort: both must succeed.
			p := ovs.Port{Name: name, IfaceID: lp.Name, Owner: own}
			if i%2 == 0 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs <- v.AddPort(ctx, o.Bridge, p)
				}()
			}
			errs <- v.AddPort(ctx, o.Bridge, p)
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for i := range count {
			require.NoError(t, v.DeletePort(context.Background(), o.Bridge, fmt.Sprintf("ovst-c%02d", i)))
		}
	})
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	ports := strings.Fields(o.Vsctl(t, "list-ports", o.Bridge))
	lsps := o.Nbctl(t, "--bare", "--columns=name", "list", "Logical_Switch_Port")
	for i := range count {
		name := fmt.Sprintf("ovst-c%02d", i)
		require.Contains(t, ports, name)
		require.Contains(t, lsps, "lsp-"+name)
	}
	owned, err := v.ListOwnedPorts(ctx)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(owned), count)
	lports, err := n.ListOwnedLogicalPorts(ctx)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(lports), count)
}

func TestReconnectAfterOVSDBRestart(t *testing.T) {
	o, v := newVSwitch(t)
	ctx := testCtx(t)
	before := ovs.Port{Name: "ovst-rc0", IfaceID: "lsp-rc0", Owner: owner("c-rc0")}
	addPort(t, v, o.Bridge, before)

	o.RestartOVSDB(t)

	after := ovs.Port{Name: "ovst-rc1", IfaceID: "lsp-rc1", Owner: owner("c-rc1")}
	deadline := time.Now().Add(30 * time.Second)
	var err error
	for attempt := 0; time.Now().Before(deadline); attempt++ {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = v.AddPort(actx, o.Bridge, after)
		cancel()
		if err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	require.NoError(t, err, "AddPort after the server restarted")
	t.Cleanup(func() { require.NoError(t, v.DeletePort(context.Background(), o.Bridge, after.Name)) })
	require.Equal(t, o.Bridge, o.Vsctl(t, "port-to-br", after.Name))

	// The cache was rebuilt: the port made before the restart is still known.
	info, err := v.GetPort(ctx, before.Name)
	require.NoError(t, err)
	require.Equal(t, before.Owner, info.Owner)
}

func TestContextCancellation(t *testing.T) {
	o, v := newVSwitch(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	err := v.AddPort(ctx, o.Bridge, ovs.Port{Name: "ovst-cancel", Owner: owner("c-cancel")})
	require.ErrorIs(t, err, context.Canceled)
	require.Less(t, time.Since(start), time.Second)
	require.Empty(t, o.Vsctl(t, "--bare", "--columns=name", "find", "Interface", "name=ovst-cancel"))

	// A wait that can never be satisfied (no logical port to bind) ends with its ctx.
	p := ovs.Port{Name: "ovst-unbound", IfaceID: "lsp-nowhere", Owner: owner("c-unbound")}
	addPort(t, v, o.Bridge, p)
	wctx, wcancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer wcancel()
	start = time.Now()
	err = v.WaitOVNInstalled(wctx, p.Name)
	require.True(t, errors.Is(err, context.DeadlineExceeded), "%v", err)
	require.Less(t, time.Since(start), 2*time.Second)
}

func portNames(ps []ovs.PortInfo) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Name
	}
	return out
}
