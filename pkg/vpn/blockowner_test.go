package vpn_test

import (
	"testing"

	"github.com/go-logr/logr"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
	"github.com/sdncni/sdncni/internal/testenv"
	"github.com/sdncni/sdncni/pkg/vpn"
)

// TestBlocksOwnedByTheirNode, against a real API server: a block that node-1 claims
// names node-1's Node object (with its UID) as owner, so Kubernetes' garbage collector
// releases a deleted node's blocks; node-2, which has no Node object, claims a block
// with no owner (the demo and the test harness run without Node objects). The
// collector itself runs in kube-controller-manager: TestRealCluster's "a deleted node's
// blocks are released" deletes a Node and sees its blocks go.
func TestBlocksOwnedByTheirNode(t *testing.T) {
	api := testenv.StartAPIServer(t)
	ctx := testCtx(t)
	require.NoError(t, api.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ob"}}))
	createVPN(ctx, t, api.Client, "blue", "ob")
	setID(ctx, t, api.Client, "blue", 7)
	n1 := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}}
	require.NoError(t, api.Client.Create(ctx, n1))

	claim := func(node string) v1alpha1.VPNBlock {
		nodes := vpn.NewNodeNetworks(api.Client, api.Client, node, 1400, logr.Discard())
		net, err := nodes.ForNamespace(ctx, "ob") // claims the node's first block
		require.NoError(t, err)
		require.NotEmpty(t, net.Ranges)
		var l v1alpha1.VPNBlockList
		require.NoError(t, api.Client.List(ctx, &l, client.MatchingLabels{v1alpha1.LabelNode: node}))
		require.Len(t, l.Items, 1)
		return l.Items[0]
	}
	b := claim("node-1")
	require.Len(t, b.OwnerReferences, 1)
	o := b.OwnerReferences[0]
	require.Equal(t, []string{"v1", "Node", "node-1", string(n1.UID)}, []string{o.APIVersion, o.Kind, o.Name, string(o.UID)})
	require.Empty(t, claim("node-2").OwnerReferences, "no Node object, no owner")
}
