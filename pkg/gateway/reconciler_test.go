package gateway

import (
	"context"
	"net/netip"
	"testing"

	"github.com/go-logr/logr"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
)

// TestBlocksRoutesOnlyBlocksOfTheVPN: of this node's VPNBlocks only those inside the
// VPN's CIDR with its node block size become routes to the management port; the others
// are reported with a Warning event on the VPN.
func TestBlocksRoutesOnlyBlocksOfTheVPN(t *testing.T) {
	scheme := runtime.NewScheme()
	require.NoError(t, v1alpha1.AddToScheme(scheme))
	v := &v1alpha1.VirtualPrivateNetwork{ObjectMeta: metav1.ObjectMeta{Name: "blue"},
		Spec: v1alpha1.VirtualPrivateNetworkSpec{CIDR: "10.77.0.0/24", NodeBlockSize: 26}}
	b := func(p, node string) *v1alpha1.VPNBlock {
		return v1alpha1.NewVPNBlock("blue", netip.MustParsePrefix(p), node)
	}
	relabelled := b("10.77.0.192/26", "node-2")
	relabelled.Labels[v1alpha1.LabelNode] = "node-1"
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(v,
		b("10.77.0.64/26", "node-1"),  // routed
		b("10.9.0.0/26", "node-1"),    // another network's addresses
		b("10.77.0.128/25", "node-1"), // not the VPN's block size
		b("10.77.0.0/26", "node-2"),   // another node's
		relabelled,                    // another node's, labelled ours
	).Build()
	rec := record.NewFakeRecorder(10)
	r := &Reconciler{Cache: c, API: c, Node: "node-1", Recorder: rec, Log: logr.Discard()}

	got, err := r.blocks(context.Background(), v)
	require.NoError(t, err)
	require.Equal(t, []netip.Prefix{netip.MustParsePrefix("10.77.0.64/26")}, got)
	require.Len(t, rec.Events, 2, "one Warning per block not routed")
	for range 2 {
		require.Contains(t, <-rec.Events, "Warning "+ReasonInvalidBlock)
	}
}
