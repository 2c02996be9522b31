package vpn_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
	"github.com/sdncni/sdncni/internal/testenv"
	"github.com/sdncni/sdncni/pkg/ovs"
	"github.com/sdncni/sdncni/pkg/vpn"
)

// createService makes a ClusterIP Service with one TCP port and an EndpointSlice of
// backends (none: no slice).
func createService(ctx context.Context, t testing.TB, c client.Client, ns, name, ip string, backends ...string) {
	t.Helper()
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{ClusterIP: ip, Ports: []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}}}}
	require.NoError(t, c.Create(ctx, svc))
	if len(backends) == 0 {
		return
	}
	require.NoError(t, c.Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name + "-x", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To[int32](8080)}},
		Endpoints:   []discoveryv1.Endpoint{{Addresses: backends}},
	}))
}

func reconcileService(ctx context.Context, t testing.TB, r *vpn.ServiceReconciler, ns, name string) {
	t.Helper()
	require.NoError(t, retryConflict(func() error {
		_, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKey{Namespace: ns, Name: name}})
		return err
	}))
}

// realisedVPN creates VPN name (cidr, namespaces) and lets the cluster role realise it.
func realisedVPN(ctx context.Context, t testing.TB, api *testenv.APIServer, cr *vpn.ClusterReconciler, name, cidr string, namespaces ...string) {
	t.Helper()
	for _, ns := range namespaces {
		require.NoError(t, api.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	}
	require.NoError(t, api.Client.Create(ctx, &v1alpha1.VirtualPrivateNetwork{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.VirtualPrivateNetworkSpec{CIDR: cidr, Namespaces: namespaces}}))
	require.NoError(t, retryConflict(func() error {
		_, err := cr.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKey{Name: name}})
		return err
	}))
}

// lbsOf lists the names of the load balancers in NB of Services in namespace ns, read
// with ovn-nbctl (an independent reader).
func lbsOf(t *testing.T, o *testenv.OVN, ns string) []string {
	t.Helper()
	var out []string
	for _, name := range strings.Fields(o.Nbctl(t, "--bare", "--columns=name", "list", "Load_Balancer")) {
		if strings.HasPrefix(name, "sdncni-svc_"+ns+"_") {
			out = append(out, name)
		}
	}
	return out
}

func limitCondition(ctx context.Context, t *testing.T, c client.Client, name, typ string) *metav1.Condition {
	t.Helper()
	return meta.FindStatusCondition(getVPN(ctx, t, c, name).Status.Conditions, typ)
}

// TestServiceLimitsPerVPN: a tenant (VPN red) creates more Services than its bound and
// a Service with more backends than one may have; the Services over the bound get no
// load balancer in NB (the oldest stay), red says so in ServiceLimitReached with the
// counts and names, Warning events go to red and to the Services; VPN blue's Services
// are realised in full and their rows are not touched by red's events. Deleting one of
// red's realised Services admits the next oldest.
func TestServiceLimitsPerVPN(t *testing.T) {
	api := testenv.StartAPIServer(t)
	o := testenv.StartOVN(t)
	ctx := testCtx(t)
	nb, err := ovs.NewNorthbound(ctx, o.NBDB, logr.Discard())
	require.NoError(t, err)
	t.Cleanup(nb.Close)
	events := record.NewFakeRecorder(1000)
	cr := &vpn.ClusterReconciler{Client: api.Client, API: api.Client, NB: nb, Recorder: events, DefaultMTU: 1400, Log: logr.Discard()}
	realisedVPN(ctx, t, api, cr, "red", "10.61.0.0/24", "r")
	realisedVPN(ctx, t, api, cr, "blue", "10.62.0.0/24", "b")
	r := &vpn.ServiceReconciler{Client: api.Client, NB: nb, Recorder: events, Log: logr.Discard(),
		Limits: vpn.Limits{ServicesPerVPN: 3, BackendsPerService: 4}}

	createService(ctx, t, api.Client, "b", "web", "10.0.0.21", "10.62.0.5")
	createService(ctx, t, api.Client, "b", "big", "10.0.0.22", "10.62.0.10", "10.62.0.11", "10.62.0.12", "10.62.0.13", "10.62.0.14", "10.62.0.15")
	reconcileService(ctx, t, r, "b", "web")
	reconcileService(ctx, t, r, "b", "big")
	// ovn-nbctl find lists rows in no fixed order: compare the sets.
	blueLBs := func() []string {
		return strings.Fields(o.Nbctl(t, "--bare", "--columns=_uuid", "find", "Load_Balancer", `external_ids:"sdncni.io/network"=blue`))
	}
	blueUUIDs := blueLBs()
	require.Len(t, blueUUIDs, 2)

	for i := range 5 {
		createService(ctx, t, api.Client, "r", fmt.Sprintf("s%d", i), fmt.Sprintf("10.0.0.%d", i+31), fmt.Sprintf("10.61.0.%d", i+5))
	}
	for i := range 5 {
		reconcileService(ctx, t, r, "r", fmt.Sprintf("s%d", i))
	}
	require.ElementsMatch(t, []string{ovs.LoadBalancerName("r", "s0", "tcp"), ovs.LoadBalancerName("r", "s1", "tcp"),
		ovs.LoadBalancerName("r", "s2", "tcp")}, lbsOf(t, o, "r"), "the three oldest of red's five Services are realised")
	c := limitCondition(ctx, t, api.Client, "red", v1alpha1.ConditionServiceLimitReached)
	require.NotNil(t, c)
	require.Equal(t, metav1.ConditionTrue, c.Status)
	require.Equal(t, v1alpha1.ReasonServicesOverLimit, c.Reason)
	require.Contains(t, c.Message, "services: 5, at most 3 realised (oldest first); 2 not realised: r/s3, r/s4")
	requireEvent(t, events, "Warning ServicesOverLimit ServiceLimitReached=True")
	requireEvent(t, events, "Warning NotRealized VPN red has 5 Services")
	routes := o.Nbctl(t, "lr-route-list", ovs.RouterName("red"))
	require.Contains(t, routes, "10.61.0.7", "a realised Service's backend has its route")
	require.NotContains(t, routes, "10.61.0.8", "a Service over the bound has no endpoint route")

	// blue: its rows unchanged by red's burst; big keeps 4 of its 6 backends.
	require.ElementsMatch(t, blueUUIDs, blueLBs())
	require.Len(t, lbsOf(t, o, "b"), 2, "blue's Services are all realised")
	vips := o.Nbctl(t, "--bare", "--columns=vips", "find", "Load_Balancer", "name="+ovs.LoadBalancerName("b", "big", "tcp"))
	require.Contains(t, vips, "10.62.0.10:8080,10.62.0.11:8080,10.62.0.12:8080,10.62.0.13:8080")
	require.NotContains(t, vips, "10.62.0.14")
	c = limitCondition(ctx, t, api.Client, "blue", v1alpha1.ConditionServiceLimitReached)
	require.NotNil(t, c)
	require.Equal(t, v1alpha1.ReasonBackendsOverLimit, c.Reason)
	require.Contains(t, c.Message, "b/big: 6 backends, 4 realised")
	require.NotContains(t, c.Message, "services:", "blue is within its Services bound")

	// A realised Service goes: the next oldest comes in.
	require.NoError(t, api.Client.Delete(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "r", Name: "s0"}}))
	reconcileService(ctx, t, r, "r", "s0")
	reconcileService(ctx, t, r, "r", "s3")
	require.ElementsMatch(t, []string{ovs.LoadBalancerName("r", "s1", "tcp"), ovs.LoadBalancerName("r", "s2", "tcp"),
		ovs.LoadBalancerName("r", "s3", "tcp")}, lbsOf(t, o, "r"))
	c = limitCondition(ctx, t, api.Client, "red", v1alpha1.ConditionServiceLimitReached)
	require.Contains(t, c.Message, "1 not realised: r/s4")
	require.NotContains(t, o.Nbctl(t, "lr-route-list", ovs.RouterName("red")), "10.61.0.5", "the deleted Service's route went")
}
