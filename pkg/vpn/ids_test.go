package vpn_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
	"github.com/sdncni/sdncni/internal/testenv"
	"github.com/sdncni/sdncni/pkg/ovs"
	"github.com/sdncni/sdncni/pkg/vpn"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func createVPN(ctx context.Context, t *testing.T, c client.Client, name string, namespaces ...string) *v1alpha1.VirtualPrivateNetwork {
	t.Helper()
	v := &v1alpha1.VirtualPrivateNetwork{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.VirtualPrivateNetworkSpec{CIDR: "10.77.0.0/24", Namespaces: namespaces}}
	require.NoError(t, c.Create(ctx, v))
	return v
}

func getVPN(ctx context.Context, t *testing.T, c client.Client, name string) *v1alpha1.VirtualPrivateNetwork {
	t.Helper()
	var v v1alpha1.VirtualPrivateNetwork
	require.NoError(t, c.Get(ctx, client.ObjectKey{Name: name}, &v))
	return &v
}

// setID writes status.vpnID by hand, as an operator (or a restored backup) might.
func setID(ctx context.Context, t *testing.T, c client.Client, name string, id uint32) {
	t.Helper()
	require.NoError(t, retryConflict(func() error {
		v := getVPN(ctx, t, c, name)
		v.Status.VPNID = id
		return c.Status().Update(ctx, v)
	}))
}

func retryConflict(f func() error) error {
	for {
		if err := f(); !apierrors.IsConflict(err) {
			return err
		}
	}
}

func reconcile(ctx context.Context, t *testing.T, r *vpn.ClusterReconciler, name string) {
	t.Helper()
	require.NoError(t, retryConflict(func() error {
		_, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKey{Name: name}})
		return err
	}))
}

// TestVPNIDsAgainstAPIServer runs the cluster role against a real API server and OVN
// Northbound. Twenty VPNs are reconciled at once by two reconcilers (two leaders during
// a handover, or one whose cache lags: either way nobody's list of VPNs is current) and
// get twenty ids; a status edited to another VPN's id is put back; deleting a VPN
// releases its claim.
func TestVPNIDsAgainstAPIServer(t *testing.T) {
	api := testenv.StartAPIServer(t)
	o := testenv.StartOVN(t)
	ctx := testCtx(t)
	nb, err := ovs.NewNorthbound(ctx, o.NBDB, logr.Discard())
	require.NoError(t, err)
	t.Cleanup(nb.Close)
	events := record.NewFakeRecorder(1000)
	newReconciler := func() *vpn.ClusterReconciler {
		return &vpn.ClusterReconciler{Client: api.Client, API: api.Client, NB: nb, Recorder: events,
			DefaultMTU: 1400, Log: logr.Discard()}
	}
	rs := []*vpn.ClusterReconciler{newReconciler(), newReconciler()}

	const n = 20
	for i := range n {
		createVPN(ctx, t, api.Client, fmt.Sprintf("v%d", i))
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			<-start
			_, err := rs[i%2].Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKey{Name: fmt.Sprintf("v%d", i)}})
			errs <- err
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	owner := map[uint32]string{}
	var shared []string
	for i := range n {
		name := fmt.Sprintf("v%d", i)
		id := getVPN(ctx, t, api.Client, name).Status.VPNID
		require.NotZero(t, id, name)
		if owner[id] != "" {
			shared = append(shared, fmt.Sprintf("%s and %s: %d", owner[id], name, id))
		}
		owner[id] = name
	}
	require.Empty(t, shared, "VPNs sharing an id")
	for id, name := range owner {
		v := getVPN(ctx, t, api.Client, name)
		var c v1alpha1.VPNID
		require.NoError(t, api.Client.Get(ctx, client.ObjectKey{Name: v1alpha1.IDName(id)}, &c), "claim of %s", name)
		require.True(t, c.Holds(v), "claim %d names %s", id, c.Spec.VPN)
	}

	t.Run("status rewritten to another VPN's id", func(t *testing.T) {
		a, b := getVPN(ctx, t, api.Client, "v0"), getVPN(ctx, t, api.Client, "v1")
		setID(ctx, t, api.Client, "v1", a.Status.VPNID)
		reconcile(ctx, t, rs[0], "v1")
		require.Equal(t, b.Status.VPNID, getVPN(ctx, t, api.Client, "v1").Status.VPNID, "v1's own id is put back")
		require.Equal(t, a.Status.VPNID, getVPN(ctx, t, api.Client, "v0").Status.VPNID)
		requireEvent(t, events, v1alpha1.ReasonIDCorrected)

		// A free number written by hand is not a second id: the VPN keeps the one it holds.
		setID(ctx, t, api.Client, "v1", v1alpha1.MaxVPNID)
		reconcile(ctx, t, rs[1], "v1")
		require.Equal(t, b.Status.VPNID, getVPN(ctx, t, api.Client, "v1").Status.VPNID)
		err := api.Client.Get(ctx, client.ObjectKey{Name: v1alpha1.IDName(v1alpha1.MaxVPNID)}, &v1alpha1.VPNID{})
		require.True(t, apierrors.IsNotFound(err), "no claim made for the edited number: %v", err)
	})

	t.Run("a claim cannot be taken over", func(t *testing.T) {
		a, b := getVPN(ctx, t, api.Client, "v2"), getVPN(ctx, t, api.Client, "v3")
		err := api.Client.Create(ctx, v1alpha1.NewVPNID(a.Status.VPNID, b))
		require.True(t, apierrors.IsAlreadyExists(err), "second claim of one id: %v", err)
	})

	t.Run("delete releases the claim", func(t *testing.T) {
		v := getVPN(ctx, t, api.Client, "v4")
		id := v.Status.VPNID
		require.NoError(t, api.Client.Delete(ctx, v))
		reconcile(ctx, t, rs[0], "v4")
		err := api.Client.Get(ctx, client.ObjectKey{Name: "v4"}, &v1alpha1.VirtualPrivateNetwork{})
		require.True(t, apierrors.IsNotFound(err), "v4 finalized: %v", err)
		err = api.Client.Get(ctx, client.ObjectKey{Name: v1alpha1.IDName(id)}, &v1alpha1.VPNID{})
		require.True(t, apierrors.IsNotFound(err), "claim %d released: %v", id, err)
		var l v1alpha1.VPNIDList
		require.NoError(t, api.Client.List(ctx, &l))
		require.Len(t, l.Items, n-1)

		// A new VPN of the same name is another VPN: it claims an id of its own, one no
		// other VPN holds (the released number may be it).
		delete(owner, id)
		createVPN(ctx, t, api.Client, "v4")
		reconcile(ctx, t, rs[1], "v4")
		again := getVPN(ctx, t, api.Client, "v4")
		require.NotZero(t, again.Status.VPNID)
		require.Empty(t, owner[again.Status.VPNID], "id %d of the new v4 is in use", again.Status.VPNID)
		var c v1alpha1.VPNID
		require.NoError(t, api.Client.Get(ctx, client.ObjectKey{Name: v1alpha1.IDName(again.Status.VPNID)}, &c))
		require.True(t, c.Holds(again), "the claim names the new v4 (its UID), not the old one")
	})
}

func requireEvent(t *testing.T, events *record.FakeRecorder, reason string) {
	t.Helper()
	for {
		select {
		case e := <-events.Events:
			if strings.Contains(e, reason) {
				return
			}
		default:
			t.Fatalf("no %s event", reason)
		}
	}
}

// fastPathSwitch records what FastPathReconciler programs.
type fastPathSwitch struct {
	mu  sync.Mutex
	ids map[uint32]bool
}

func (s *fastPathSwitch) SetVPNFastPath(_ context.Context, id uint32, on bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids[id] = on
	return nil
}

// TestNodeRefusesSharedID: two VPNs carry one id in the API (an older version's
// collision, a hand-edited status): a node serves only the one the id's claim names, or
// with no claim seen, the one created first; the other gets no pods, no fast path and
// no place in All.
func TestNodeRefusesSharedID(t *testing.T) {
	api := testenv.StartAPIServer(t)
	ctx := testCtx(t)
	for _, ns := range []string{"na", "nb"} {
		require.NoError(t, api.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	}
	createVPN(ctx, t, api.Client, "a", "na")
	time.Sleep(1100 * time.Millisecond) // creationTimestamp has one-second resolution
	createVPN(ctx, t, api.Client, "b", "nb")
	setID(ctx, t, api.Client, "a", 7)
	setID(ctx, t, api.Client, "b", 7)

	nodes := vpn.NewNodeNetworks(api.Client, api.Client, "node-1", 1400, logr.Discard())
	sw := &fastPathSwitch{ids: map[uint32]bool{}}
	fp := &vpn.FastPathReconciler{Client: api.Client, Datapath: sw, Log: logr.Discard()}
	served := func(ns string) error {
		_, err := nodes.ForNamespace(ctx, ns)
		return err
	}
	names := func() []string {
		var out []string
		for _, n := range nodes.All() {
			out = append(out, n.Name)
		}
		return out
	}

	require.NoError(t, served("na"), "the older VPN keeps the id while no claim is seen")
	err := served("nb")
	require.ErrorIs(t, err, vpn.ErrIDConflict)
	require.ErrorIs(t, err, vpn.ErrNotReady, "new pods wait (CNI code 11)")
	require.Equal(t, []string{"a"}, names())
	_, ok := nodes.ByName("b")
	require.False(t, ok)
	_, err = fp.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKey{Name: "b"}})
	require.NoError(t, err)
	require.Empty(t, sw.ids, "b's fast path setting must not be applied to id 7")

	// The claim says whose id it is.
	require.NoError(t, api.Client.Create(ctx, v1alpha1.NewVPNID(7, getVPN(ctx, t, api.Client, "b"))))
	require.ErrorIs(t, served("na"), vpn.ErrIDConflict)
	require.NoError(t, served("nb"))
	require.Equal(t, []string{"b"}, names())
	_, err = fp.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKey{Name: "a"}})
	require.NoError(t, err)
	require.Empty(t, sw.ids)
	_, err = fp.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKey{Name: "b"}})
	require.NoError(t, err)
	require.Equal(t, map[uint32]bool{7: true}, sw.ids)
}
