package vpn_test

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/ovn-kubernetes/libovsdb/cache"
	ovsclient "github.com/ovn-kubernetes/libovsdb/client"
	"github.com/ovn-kubernetes/libovsdb/model"
	"github.com/stretchr/testify/require"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sdncni/sdncni/internal/testenv"
	"github.com/sdncni/sdncni/pkg/ovs"
	"github.com/sdncni/sdncni/pkg/ovs/model/nb"
	"github.com/sdncni/sdncni/pkg/vpn"
)

// countingNB is the Northbound with a count of what the Service reconciler reads from
// and hands to it: load balancer rows listed and endpoint addresses passed for routes.
type countingNB struct {
	*ovs.Northbound
	mu          sync.Mutex
	rowsRead    int
	routeAddrs  int
	fullRebuild int
}

func (c *countingNB) add(rows, addrs, full int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rowsRead += rows
	c.routeAddrs += addrs
	c.fullRebuild += full
}

func (c *countingNB) reset() (rows, addrs, full int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rows, addrs, full = c.rowsRead, c.routeAddrs, c.fullRebuild
	c.rowsRead, c.routeAddrs, c.fullRebuild = 0, 0, 0
	return rows, addrs, full
}

func (c *countingNB) ListOwnedLoadBalancers(ctx context.Context) ([]ovs.LoadBalancer, error) {
	lbs, err := c.Northbound.ListOwnedLoadBalancers(ctx)
	c.add(len(lbs), 0, 0)
	return lbs, err
}

func (c *countingNB) ServiceLoadBalancers(ctx context.Context, service string) ([]ovs.LoadBalancer, error) {
	lbs, err := c.Northbound.ServiceLoadBalancers(ctx, service)
	c.add(len(lbs), 0, 0)
	return lbs, err
}

func (c *countingNB) SetEndpointRoutes(ctx context.Context, endpoints map[string][]netip.Addr) error {
	n := 0
	for _, a := range endpoints {
		n += len(a)
	}
	c.add(0, n, 1)
	return c.Northbound.SetEndpointRoutes(ctx, endpoints)
}

func (c *countingNB) UpdateEndpointRoutes(ctx context.Context, network string, want map[netip.Addr]bool) error {
	c.add(0, len(want), 0)
	return c.Northbound.UpdateEndpointRoutes(ctx, network, want)
}

// nbMonitor records every row change of OVN NB that an independent client sees.
type nbMonitor struct {
	mu      sync.Mutex
	changes []string // "table op uuid"
}

func monitorNB(ctx context.Context, t testing.TB, endpoint string) *nbMonitor {
	t.Helper()
	dbModel, err := nb.FullDatabaseModel()
	require.NoError(t, err)
	c, err := ovsclient.NewOVSDBClient(dbModel, ovsclient.WithEndpoint(endpoint))
	require.NoError(t, err)
	require.NoError(t, c.Connect(ctx))
	t.Cleanup(c.Close)
	m := &nbMonitor{}
	uuid := func(row model.Model) string {
		switch r := row.(type) {
		case *nb.LoadBalancer:
			return r.UUID
		case *nb.LogicalRouterStaticRoute:
			return r.UUID
		case *nb.LogicalRouter:
			return r.UUID
		case *nb.LogicalSwitch:
			return r.UUID
		}
		return "?"
	}
	rec := func(table, op string, row model.Model) {
		m.mu.Lock()
		defer m.mu.Unlock()
		m.changes = append(m.changes, table+" "+op+" "+uuid(row))
	}
	c.Cache().AddEventHandler(&cache.EventHandlerFuncs{
		AddFunc:    func(table string, row model.Model) { rec(table, "insert", row) },
		UpdateFunc: func(table string, _, row model.Model) { rec(table, "update", row) },
		DeleteFunc: func(table string, row model.Model) { rec(table, "delete", row) },
	})
	_, err = c.MonitorAll(ctx)
	require.NoError(t, err)
	return m
}

// settle waits until no change has come for a moment and returns the changes so far,
// clearing them.
func (m *nbMonitor) settle() []string {
	last := -1
	for range 50 {
		time.Sleep(100 * time.Millisecond)
		m.mu.Lock()
		n := len(m.changes)
		m.mu.Unlock()
		if n == last {
			break
		}
		last = n
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := m.changes
	m.changes = nil
	return out
}

func setBackends(ctx context.Context, t testing.TB, c client.Client, ns, name string, backends ...string) {
	t.Helper()
	require.NoError(t, retryConflict(func() error {
		var s discoveryv1.EndpointSlice
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name + "-x"}, &s); err != nil {
			return err
		}
		s.Endpoints = []discoveryv1.Endpoint{{Addresses: backends}}
		return c.Update(ctx, &s)
	}))
}

func uuidOf(t *testing.T, o *testenv.OVN, table string, cond ...string) string {
	t.Helper()
	return o.Nbctl(t, append([]string{"--bare", "--columns=_uuid", "find", table}, cond...)...)
}

// TestServiceEventTouchesOnlyItsRows: with Services of two tenants realised, one
// Service's endpoint change reads only that Service's load balancer rows and passes
// only its own backends' addresses for routes — the same with 3 or 40 other Services —
// and an independent NB monitor sees writes to that load balancer, the routes of the
// addresses it gained or lost and its VPN's router, nothing else. A backend another
// Service still has keeps its route.
func TestServiceEventTouchesOnlyItsRows(t *testing.T) {
	api := testenv.StartAPIServer(t)
	o := testenv.StartOVN(t)
	ctx := testCtx(t)
	raw, err := ovs.NewNorthbound(ctx, o.NBDB, logr.Discard())
	require.NoError(t, err)
	t.Cleanup(raw.Close)
	nbc := &countingNB{Northbound: raw}
	cr := &vpn.ClusterReconciler{Client: api.Client, API: api.Client, NB: raw, Recorder: record.NewFakeRecorder(100),
		DefaultMTU: 1400, Log: logr.Discard()}
	realisedVPN(ctx, t, api, cr, "red", "10.61.0.0/24", "r")
	realisedVPN(ctx, t, api, cr, "blue", "10.62.0.0/16", "b")
	r := &vpn.ServiceReconciler{Client: api.Client, NB: nbc, Log: logr.Discard(), Limits: vpn.DefaultLimits()}
	createService(ctx, t, api.Client, "r", "s1", "10.0.0.11", "10.61.0.6", "10.61.0.7")
	createService(ctx, t, api.Client, "r", "s2", "10.0.0.12", "10.61.0.6")
	reconcileService(ctx, t, r, "r", "s1")
	reconcileService(ctx, t, r, "r", "s2")
	setBackends(ctx, t, api.Client, "r", "s1", "10.61.0.6", "10.61.0.7", "10.61.0.99")
	reconcileService(ctx, t, r, "r", "s1")

	perEvent := map[int][3]int{}
	for _, others := range []int{3, 40} {
		for i := len(perEvent) * 3; i < others; i++ {
			name := fmt.Sprintf("o%d", i)
			createService(ctx, t, api.Client, "b", name, fmt.Sprintf("10.0.0.%d", 100+i), fmt.Sprintf("10.62.%d.1", i), fmt.Sprintf("10.62.%d.2", i))
			reconcileService(ctx, t, r, "b", name)
		}
		setBackends(ctx, t, api.Client, "r", "s1", "10.61.0.6", "10.61.0.7", fmt.Sprintf("10.61.0.%d", 100+others))
		nbc.reset()
		reconcileService(ctx, t, r, "r", "s1")
		rows, addrs, full := nbc.reset()
		perEvent[others] = [3]int{rows, addrs, full}
	}
	require.Equal(t, perEvent[3], perEvent[40], "rows read, route addresses, full rebuilds per event: not more with more Services (3 vs 40 others)")
	require.Zero(t, perEvent[3][2], "no full rebuild of the endpoint routes on an event")

	setBackends(ctx, t, api.Client, "r", "s1", "10.61.0.6", "10.61.0.7")
	reconcileService(ctx, t, r, "r", "s1")
	mon := monitorNB(ctx, t, o.NBDB)
	mon.settle()
	lb := uuidOf(t, o, "Load_Balancer", "name="+ovs.LoadBalancerName("r", "s1", "tcp"))
	router := uuidOf(t, o, "Logical_Router", "name="+ovs.RouterName("red"))
	gone := uuidOf(t, o, "Logical_Router_Static_Route", "ip_prefix=10.61.0.7/32")
	require.NotEmpty(t, gone)
	setBackends(ctx, t, api.Client, "r", "s1", "10.61.0.6", "10.61.0.50") // 10.61.0.7 leaves, .50 comes; s2 keeps .6
	reconcileService(ctx, t, r, "r", "s1")
	added := uuidOf(t, o, "Logical_Router_Static_Route", "ip_prefix=10.61.0.50/32")
	require.NotEmpty(t, added)
	require.ElementsMatch(t, []string{
		"Load_Balancer update " + lb,
		"Logical_Router update " + router,
		"Logical_Router_Static_Route insert " + added,
		"Logical_Router_Static_Route delete " + gone,
	}, mon.settle(), "one Service's event writes its load balancer, its backends' routes and its router only")
	require.NotEmpty(t, uuidOf(t, o, "Logical_Router_Static_Route", "ip_prefix=10.61.0.6/32"), "s2 still has .6: its route stays")
}

// BenchmarkServiceEvent prints the cost of one Service's endpoint change with 1 and 200
// other Services realised (real API server and OVN NB): time, NB rows read and route
// addresses handed over per event. Figures, not assertions. (200, not 500: the test API
// server's ClusterIP range is a /24.)
func BenchmarkServiceEvent(b *testing.B) {
	api := testenv.StartAPIServer(b)
	o := testenv.StartOVN(b)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	b.Cleanup(cancel)
	raw, err := ovs.NewNorthbound(ctx, o.NBDB, logr.Discard())
	require.NoError(b, err)
	b.Cleanup(raw.Close)
	nbc := &countingNB{Northbound: raw}
	cr := &vpn.ClusterReconciler{Client: api.Client, API: api.Client, NB: raw, Recorder: record.NewFakeRecorder(100),
		DefaultMTU: 1400, Log: logr.Discard()}
	realisedVPN(ctx, b, api, cr, "red", "10.61.0.0/24", "r")
	realisedVPN(ctx, b, api, cr, "blue", "10.62.0.0/16", "b")
	r := &vpn.ServiceReconciler{Client: api.Client, NB: nbc, Log: logr.Discard(), Limits: vpn.DefaultLimits()}
	createService(ctx, b, api.Client, "r", "s1", "10.0.0.11", "10.61.0.6")
	reconcileService(ctx, b, r, "r", "s1")
	made := 0
	for _, others := range []int{1, 200} {
		for ; made < others; made++ {
			name := fmt.Sprintf("o%d", made)
			createService(ctx, b, api.Client, "b", name, "", fmt.Sprintf("10.62.%d.1", made), fmt.Sprintf("10.62.%d.2", made))
			reconcileService(ctx, b, r, "b", name)
		}
		b.Run(fmt.Sprintf("others=%d", others), func(b *testing.B) {
			nbc.reset()
			i := 0
			for b.Loop() {
				b.StopTimer()
				setBackends(ctx, b, api.Client, "r", "s1", "10.61.0.6", fmt.Sprintf("10.61.0.%d", 10+i%2))
				b.StartTimer()
				reconcileService(ctx, b, r, "r", "s1")
				i++
			}
			rows, addrs, _ := nbc.reset()
			b.ReportMetric(float64(rows)/float64(i), "lb-rows-read/event")
			b.ReportMetric(float64(addrs)/float64(i), "route-addrs/event")
		})
	}
}
