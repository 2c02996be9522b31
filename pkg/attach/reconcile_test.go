package attach

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	"github.com/go-logr/logr"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"

	"github.com/sdncni/sdncni/internal/testenv"
	"github.com/sdncni/sdncni/pkg/datapath"
	"github.com/sdncni/sdncni/pkg/ipam"
	"github.com/sdncni/sdncni/pkg/ipam/ipamtest"
	"github.com/sdncni/sdncni/pkg/ovs"
)

func TestClassify(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want outcome
	}{
		{"complete", nil, outcomeKept},
		{"host veth gone", fmt.Errorf("host veth sdnh1: %w", ErrPodGone), outcomeRemoved},
		{"nb unavailable", fmt.Errorf("logical port x: %w", errors.New("not connected")), outcomeRetry},
		{"timeout", fmt.Errorf("recreate ovs port: %w", context.DeadlineExceeded), outcomeRetry},
		{"piece missing, not recreated", fmt.Errorf("ovs port: %w", ovs.ErrNotFound), outcomeRetry},
		{"conflicting row", fmt.Errorf("ovs port: %w", ovs.ErrConflict), outcomeRetry},
		{"store corrupt", fmt.Errorf("look up address: %w", ipam.ErrCorrupt), outcomeRetry},
		{"network not known yet", fmt.Errorf("%w: tenant", ErrUnknownNetwork), outcomeRetry},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { require.Equal(t, tc.want, classify(tc.err)) })
	}
}

func TestMissingHostVethIsGone(t *testing.T) {
	_, err := podHostLink("sdnhnosuchlink0")
	require.ErrorIs(t, err, ErrPodGone)
}

// fakeVSwitch is the local OVSDB; fakeNB the Northbound, which can be made unavailable;
// fakeDatapath the fast path, whose Attach can be made to fail.
type fakeVSwitch struct {
	mu      sync.Mutex
	ports   map[string]ovs.PortInfo
	deleted []string
}

func (f *fakeVSwitch) AddPort(_ context.Context, _ string, p ovs.Port) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ports[p.Name] = ovs.PortInfo{Name: p.Name, IfaceID: p.IfaceID, Owner: p.Owner, OFPort: 1, OVNInstalled: true}
	return nil
}
func (f *fakeVSwitch) DeletePort(_ context.Context, _, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.ports, name)
	f.deleted = append(f.deleted, name)
	return nil
}
func (f *fakeVSwitch) GetPort(_ context.Context, name string) (ovs.PortInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.ports[name]
	if !ok {
		return p, ovs.ErrNotFound
	}
	return p, nil
}
func (f *fakeVSwitch) ListOwnedPorts(context.Context) ([]ovs.PortInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []ovs.PortInfo
	for _, p := range f.ports {
		out = append(out, p)
	}
	return out, nil
}
func (f *fakeVSwitch) WaitOVNInstalled(context.Context, string) error { return nil }

type fakeNB struct {
	mu      sync.Mutex
	lsps    map[string]ovs.LogicalPortInfo
	down    bool // every call fails, as with the server unreachable
	deleted []string
}

var errNBDown = errors.New("not connected")

func (f *fakeNB) setDown(d bool) { f.mu.Lock(); f.down = d; f.mu.Unlock() }

func (f *fakeNB) EnsureNetwork(context.Context, ovs.Network) error { return nil }
func (f *fakeNB) AddLogicalPort(_ context.Context, network string, lp ovs.LogicalPort) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return errNBDown
	}
	lp.Owner.Network = network
	f.lsps[lp.Name] = ovs.LogicalPortInfo{Name: lp.Name, Network: network, MAC: lp.MAC, IPs: lp.IPs, Owner: lp.Owner}
	return nil
}
func (f *fakeNB) DeleteLogicalPort(_ context.Context, _, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return errNBDown
	}
	delete(f.lsps, name)
	f.deleted = append(f.deleted, name)
	return nil
}
func (f *fakeNB) GetLogicalPort(_ context.Context, name string) (ovs.LogicalPortInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return ovs.LogicalPortInfo{}, errNBDown
	}
	p, ok := f.lsps[name]
	if !ok {
		return p, ovs.ErrNotFound
	}
	return p, nil
}
func (f *fakeNB) ListOwnedLogicalPorts(context.Context) ([]ovs.LogicalPortInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, errNBDown
	}
	var out []ovs.LogicalPortInfo
	for _, p := range f.lsps {
		out = append(out, p)
	}
	return out, nil
}

type fakeDatapath struct {
	mu       sync.Mutex
	eps      map[string]datapath.Endpoint
	fail     map[string]bool // host veths whose programs cannot be attached
	detached []string
}

func (f *fakeDatapath) setFail(hostIf string, fail bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[hostIf] = fail
}

// Attach keeps the real one's contract: the host veth is up only with its programs.
func (f *fakeDatapath) Attach(_ context.Context, ep datapath.Endpoint) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail[ep.HostIfName] {
		return errors.Join(errors.New("attach tcx: injected failure"), linkDown(ep.HostIfName))
	}
	f.eps[ep.HostIfName] = ep
	l, err := netlink.LinkByName(ep.HostIfName)
	if err != nil {
		return err
	}
	return netlink.LinkSetUp(l)
}
func (f *fakeDatapath) Detach(_ context.Context, ep datapath.Endpoint) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.eps, ep.HostIfName)
	f.detached = append(f.detached, ep.HostIfName)
	return nil
}
func (f *fakeDatapath) Check(_ context.Context, ep datapath.Endpoint) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.eps[ep.HostIfName]; !ok {
		return datapath.ErrNotAttached
	}
	return nil
}
func (f *fakeDatapath) Endpoints(context.Context) ([]datapath.Endpoint, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []datapath.Endpoint
	for _, ep := range f.eps {
		out = append(out, ep)
	}
	return out, nil
}
func (f *fakeDatapath) Sweep(context.Context, map[string]bool) (datapath.SweepReport, error) {
	return datapath.SweepReport{}, nil
}

type reconcileRig struct {
	m     *Manager
	vs    *fakeVSwitch
	nb    *fakeNB
	dp    *fakeDatapath
	store *ipam.Store
	net   Network
}

// add records a complete attachment of k in every fake and the store; with a pod netns
// it also makes the pod's host veth (peer in podNS) and a stand-in for the OVS port's
// tap, in the calling thread's netns.
func (r *reconcileRig) add(t *testing.T, k Key, podNS ns.NetNS) {
	t.Helper()
	ctx := context.Background()
	names := NamesFor(k)
	a, err := r.store.Allocate(ctx, r.net.Pool(), ipam.Owner{ContainerID: k.ContainerID, IfName: k.IfName, PodNamespace: "default", PodName: k.ContainerID})
	require.NoError(t, err)
	owner := ovs.Owner{PodNamespace: "default", PodName: k.ContainerID, ContainerID: k.ContainerID, IfName: k.IfName, Network: r.net.Name, Node: "node1"}
	require.NoError(t, r.vs.AddPort(ctx, "br-int", ovs.Port{Name: names.OVSIf, IfaceID: names.LSP, Owner: owner}))
	require.NoError(t, r.nb.AddLogicalPort(ctx, r.net.Name, ovs.LogicalPort{Name: names.LSP, MAC: MACFor(a.Addr.Addr()), IPs: []netip.Addr{a.Addr.Addr()}, Owner: owner}))
	if podNS == nil {
		return
	}
	require.NoError(t, netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: names.HostIf, Flags: net.FlagUp},
		PeerName: "p" + names.HostIf[4:], PeerNamespace: netlink.NsFd(int(podNS.Fd()))}))
	// No dummy module here: a veth pair stands in for the OVS port's tap.
	require.NoError(t, netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: names.OVSIf}, PeerName: "q" + names.OVSIf[4:]}))
	host, err := netlink.LinkByName(names.HostIf)
	require.NoError(t, err)
	require.NoError(t, netlink.LinkSetUp(host))
}

func hostUp(t *testing.T, k Key) bool {
	t.Helper()
	l, err := netlink.LinkByName(NamesFor(k).HostIf)
	require.NoError(t, err)
	return l.Attrs().Flags&net.FlagUp != 0
}

// TestReconcileGoneVersusTransient runs Reconcile against fakes of OVSDB, NB and the
// datapath, with real links in a private netns: a running pod is kept through NB
// errors (retried, then left pending and finished by RetryPending), a pod whose
// datapath cannot be attached is cut off (host veth down) and kept, and only the pod
// whose host veth is gone is removed.
func TestReconcileGoneVersusTransient(t *testing.T) {
	testenv.RequireRoot(t)
	nodeNS, err := testutils.NewNS()
	require.NoError(t, err)
	t.Cleanup(func() { _ = nodeNS.Close(); _ = testutils.UnmountNS(nodeNS) })
	podNS, err := testutils.NewNS()
	require.NoError(t, err)
	t.Cleanup(func() { _ = podNS.Close(); _ = testutils.UnmountNS(podNS) })

	nets, err := NewStaticNetworks("e2e", []Network{{Name: "e2e", ID: 1, Prefix: netip.MustParsePrefix("10.88.0.0/24"),
		Gateway: netip.MustParseAddr("10.88.0.1"), MTU: 1400, FastPath: true}}, nil)
	require.NoError(t, err)
	r := &reconcileRig{
		vs: &fakeVSwitch{ports: map[string]ovs.PortInfo{}}, nb: &fakeNB{lsps: map[string]ovs.LogicalPortInfo{}},
		dp: &fakeDatapath{eps: map[string]datapath.Endpoint{}, fail: map[string]bool{}}, store: ipamtest.NewStore(t), net: nets.All()[0],
	}
	r.m = New(Config{Bridge: "br-int", NodeName: "node1", LinkWait: time.Second,
		ReconcileTimeout: 2 * time.Second, ReconcileBudget: 2 * time.Second},
		Deps{VSwitch: r.vs, Northbound: r.nb, IPAM: r.store, Datapath: r.dp, Networks: nets}, logr.Discard())
	running, closed, gone := Key{"running", "eth0"}, Key{"closed", "eth0"}, Key{"gone", "eth0"}

	require.NoError(t, nodeNS.Do(func(ns.NetNS) error {
		ctx := t.Context()
		r.add(t, running, podNS)
		r.add(t, closed, podNS)
		r.add(t, gone, nil) // its netns was deleted: no host veth

		// NB unavailable.
		r.nb.setDown(true)
		rep, err := r.m.Reconcile(ctx)
		require.Error(t, err, "the attachments cannot all be listed without NB")
		require.True(t, rep.Unlisted)
		require.Zero(t, rep.Removed)
		require.Empty(t, r.vs.deleted)
		require.Empty(t, r.dp.detached)

		// NB drops out after the listing: every read and write of a port fails. The
		// running pods are kept and left pending; so is the gone pod, whose logical port
		// cannot be deleted yet. The datapath of "closed" cannot be attached.
		r.nb.setDown(false)
		lsps, err := r.nb.ListOwnedLogicalPorts(ctx)
		require.NoError(t, err)
		require.Len(t, lsps, 3)
		r.nb.setDown(true)
		r.m.deps.Northbound = &listOnlyNB{fakeNB: r.nb, lsps: lsps}
		r.dp.setFail(NamesFor(closed).HostIf, true)
		rep, err = r.m.Reconcile(ctx)
		require.NoError(t, err)
		require.False(t, rep.Unlisted)
		require.ElementsMatch(t, []Key{running, closed, gone}, rep.Pending)
		require.Zero(t, rep.Removed)
		require.False(t, hostUp(t, closed), "a pod whose datapath could not be attached must be cut off")
		require.True(t, hostUp(t, running), "a running pod with its datapath stays up through NB errors")
		held := map[string]bool{}
		allocs, err := r.store.List(ctx)
		require.NoError(t, err)
		for _, a := range allocs {
			held[a.Owner.ContainerID] = true
		}
		require.True(t, held["running"] && held["closed"], "a running pod's address was released: %v", held)
		require.Len(t, r.nb.lsps, 3, "a logical port was deleted while NB was unavailable")
		for _, p := range r.vs.deleted {
			require.Equal(t, NamesFor(gone).OVSIf, p, "a running pod's OVS port was deleted")
		}

		// NB back, the datapath attachable: the background retry finishes every one.
		r.m.deps.Northbound = r.nb
		r.nb.setDown(false)
		r.dp.setFail(NamesFor(closed).HostIf, false)
		rep = r.m.RetryPending(ctx, rep)
		require.True(t, rep.Done(), "%+v", rep)
		require.True(t, hostUp(t, closed))
		require.True(t, hostUp(t, running))
		allocs, err = r.store.List(ctx)
		require.NoError(t, err)
		require.Len(t, allocs, 2)
		for _, p := range r.vs.deleted {
			require.Equal(t, NamesFor(gone).OVSIf, p, "a running pod's OVS port was deleted")
		}
		require.Equal(t, []string{NamesFor(gone).LSP}, r.nb.deleted, "only the gone pod's logical port is deleted")
		for _, k := range []Key{running, closed} {
			require.Contains(t, r.dp.eps, NamesFor(k).HostIf, "datapath of %s not attached", k.ContainerID)
			require.Contains(t, r.nb.lsps, NamesFor(k).LSP)
		}
		return nil
	}))
}

// listOnlyNB answers the listing of logical ports while every other call fails: NB
// dropping out between Reconcile's listing and its repairs.
type listOnlyNB struct {
	*fakeNB
	lsps []ovs.LogicalPortInfo
}

func (l *listOnlyNB) ListOwnedLogicalPorts(context.Context) ([]ovs.LogicalPortInfo, error) {
	return l.lsps, nil
}
