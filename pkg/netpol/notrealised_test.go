package netpol

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
	"github.com/sdncni/sdncni/pkg/ovs"
)

type recordingNB struct{ acls map[string][]ovs.PolicyACL }

func (f *recordingNB) ListOwnedLogicalPorts(context.Context) ([]ovs.LogicalPortInfo, error) {
	return nil, nil
}

func (f *recordingNB) SetPolicyRules(_ context.Context, network string, _ []ovs.PolicyAddressSet, acls []ovs.PolicyACL) error {
	f.acls[network] = acls
	return nil
}

// TestReconcileReportsPolicyNotRealised: a policy with a part the datapath cannot
// enforce (SCTP) gets one Warning event naming the rule, its other rules are still
// realised, and a policy without problems gets none.
func TestReconcileReportsPolicyNotRealised(t *testing.T) {
	scheme := runtime.NewScheme()
	require.NoError(t, clientgoscheme.AddToScheme(scheme))
	require.NoError(t, v1alpha1.AddToScheme(scheme))
	sctp, tcp := corev1.ProtocolSCTP, corev1.ProtocolTCP
	p80 := intstr.FromInt32(80)
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "x"}},
		&v1alpha1.VirtualPrivateNetwork{ObjectMeta: metav1.ObjectMeta{Name: "p"},
			Spec:   v1alpha1.VirtualPrivateNetworkSpec{Namespaces: []string{"x"}},
			Status: v1alpha1.VirtualPrivateNetworkStatus{OVN: &v1alpha1.OVNStatus{}}},
		&networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: "sctp"},
			Spec: networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{
				{Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &p80}}},
				{Ports: []networkingv1.NetworkPolicyPort{{Protocol: &sctp, Port: &p80}}},
			}}},
		&networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: "fine"},
			Spec: networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{
				{Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &p80}}},
			}}},
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).WithStatusSubresource(objs[1]).Build()
	rec := record.NewFakeRecorder(10)
	nb := &recordingNB{acls: map[string][]ovs.PolicyACL{}}
	r := &Reconciler{Client: c, NB: nb, Recorder: rec}
	_, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKey{Name: "p"}})
	require.NoError(t, err)

	require.Len(t, rec.Events, 1, "one event: only the SCTP policy has a problem")
	ev := <-rec.Events
	require.Contains(t, ev, "Warning PolicyNotRealised ingress rule 1: protocol SCTP is not supported")
	require.NotEmpty(t, nb.acls["p"], "the policies' other rules are realised")
}
