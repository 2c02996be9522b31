package netpol

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	cnpv1 "sigs.k8s.io/network-policy-api/apis/v1beta1"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
	"github.com/sdncni/sdncni/internal/testenv"
	"github.com/sdncni/sdncni/pkg/ovs"
	"github.com/sdncni/sdncni/pkg/policy"
)

// fakeNB holds the pods' logical ports and records the rows SetPolicyRules is given,
// per network.
type fakeNB struct {
	ports []ovs.LogicalPortInfo
	mu    sync.Mutex
	acls  map[string][]ovs.PolicyACL
}

func (f *fakeNB) ListOwnedLogicalPorts(context.Context) ([]ovs.LogicalPortInfo, error) {
	return f.ports, nil
}

func (f *fakeNB) SetPolicyRules(_ context.Context, network string, _ []ovs.PolicyAddressSet, acls []ovs.PolicyACL) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.acls[network] = acls
	return nil
}

func (f *fakeNB) rows(network string) []ovs.PolicyACL {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.acls[network]
}

// TestReconcilerClusterPolicies runs the cluster role's Reconciler against a real API
// server with the ClusterNetworkPolicy CRD of deploy/crds. A ClusterNetworkPolicy,
// cluster-scoped, is realised in every VPN whose pods it selects, and only in those; a
// change of it alone (no other event) re-runs the VPNs; a rule it cannot realise (SCTP)
// gives the policy ConditionRealised False with the reason, which goes back to True once
// the rule is fixed.
func TestReconcilerClusterPolicies(t *testing.T) {
	api := testenv.StartAPIServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := api.Client
	for _, ns := range []string{"x", "y", "w"} {
		require.NoError(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{"ns": ns}}}))
	}
	nb := &fakeNB{acls: map[string][]ovs.PolicyACL{}}
	for i, v := range []struct {
		name string
		nss  []string
	}{{"p", []string{"x", "y"}}, {"q", []string{"w"}}} {
		vpn := &v1alpha1.VirtualPrivateNetwork{ObjectMeta: metav1.ObjectMeta{Name: v.name},
			Spec: v1alpha1.VirtualPrivateNetworkSpec{CIDR: "10.1.0.0/16", Namespaces: v.nss}}
		require.NoError(t, c.Create(ctx, vpn))
		vpn.Status.OVN = &v1alpha1.OVNStatus{Router: ovs.RouterName(v.name), Switch: ovs.SwitchName(v.name)}
		require.NoError(t, c.Status().Update(ctx, vpn))
		for j, ns := range v.nss {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "a", Labels: map[string]string{"pod": "a"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "sdncni"}}}}
			require.NoError(t, c.Create(ctx, pod))
			nb.ports = append(nb.ports, ovs.LogicalPortInfo{Name: ns + "-a", Network: v.name,
				IPs: []netip.Addr{netip.AddrFrom4([4]byte{10, 1, byte(i), byte(10 + j)})}, Owner: ovs.Owner{PodNamespace: ns, PodName: "a"}})
		}
	}
	sctp := &cnpv1.ClusterNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "deny-y"}, Spec: cnpv1.ClusterNetworkPolicySpec{
		Tier: cnpv1.AdminTier, Priority: 10, Subject: cnpv1.ClusterNetworkPolicySubject{Namespaces: &metav1.LabelSelector{MatchLabels: map[string]string{"ns": "x"}}},
		Ingress: []cnpv1.ClusterNetworkPolicyIngressRule{{Action: cnpv1.ClusterNetworkPolicyRuleActionDeny,
			From:      []cnpv1.ClusterNetworkPolicyIngressPeer{{Namespaces: &metav1.LabelSelector{MatchLabels: map[string]string{"ns": "y"}}}},
			Protocols: []cnpv1.ClusterNetworkPolicyProtocol{{SCTP: &cnpv1.ClusterNetworkPolicyProtocolSCTP{DestinationPort: &cnpv1.Port{Number: 80}}}}}}}}
	require.NoError(t, c.Create(ctx, sctp))

	mgr, err := ctrl.NewManager(api.Config, ctrl.Options{Scheme: api.Scheme, Metrics: metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0", Logger: logr.Discard()})
	require.NoError(t, err)
	served := ClusterPoliciesServed(mgr.GetRESTMapper())
	require.True(t, served, "the CRD of deploy/crds serves v1beta1")
	// No periodic resync: only the watches can bring the changes below.
	r := &Reconciler{Client: mgr.GetClient(), NB: nb, ClusterPolicies: served, Log: logr.Discard()}
	require.NoError(t, r.SetupWithManager(mgr))
	mctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = mgr.Start(mctx) }()
	t.Cleanup(func() { stop(); <-done })

	condition := func() *metav1.Condition {
		var got cnpv1.ClusterNetworkPolicy
		require.NoError(t, c.Get(ctx, client.ObjectKey{Name: "deny-y"}, &got))
		return meta.FindStatusCondition(got.Status.Conditions, ConditionRealised)
	}
	require.Eventually(t, func() bool {
		cond := condition()
		return cond != nil && cond.Status == metav1.ConditionFalse && cond.Reason == "NotRealised" && strings.Contains(cond.Message, "SCTP")
	}, 30*time.Second, 100*time.Millisecond, "an SCTP-only rule is reported on the policy")
	// The rule matches nothing, so nothing to realise: no Admin rows.
	admin := func(network string) []ovs.PolicyACL {
		var out []ovs.PolicyACL
		for _, a := range nb.rows(network) {
			if a.Priority >= policy.PriorityAdminBottom && a.Priority <= policy.PriorityAdminTop {
				out = append(out, a)
			}
		}
		return out
	}
	require.Empty(t, admin("p"))

	// Fix the rule (TCP): the policy change alone re-runs the VPNs.
	var cur cnpv1.ClusterNetworkPolicy
	require.NoError(t, c.Get(ctx, client.ObjectKey{Name: "deny-y"}, &cur))
	cur.Spec.Ingress[0].Protocols = []cnpv1.ClusterNetworkPolicyProtocol{{TCP: &cnpv1.ClusterNetworkPolicyProtocolTCP{DestinationPort: &cnpv1.Port{Number: 80}}}}
	require.NoError(t, c.Update(ctx, &cur))
	require.Eventually(t, func() bool {
		rows := admin("p")
		return len(rows) == 1 && rows[0].Action == policy.Drop && rows[0].Priority == policy.PriorityAdminTop &&
			rows[0].Policy == policy.ClusterPolicyKey("deny-y") && strings.Contains(rows[0].Match, "tcp.dst == 80")
	}, 30*time.Second, 100*time.Millisecond, "the admin deny is written to p's switch")
	require.Eventually(t, func() bool {
		cond := condition()
		return cond != nil && cond.Status == metav1.ConditionTrue && cond.ObservedGeneration == cur.Generation
	}, 30*time.Second, 100*time.Millisecond, "the condition goes back to Realised")
	require.Empty(t, nb.rows("q"), "VPN q has no pod the policy selects: no rows")

	// Deleting it removes its rows everywhere.
	require.NoError(t, c.Delete(ctx, &cur))
	require.Eventually(t, func() bool { return len(nb.rows("p")) == 0 }, 30*time.Second, 100*time.Millisecond)
}
