package vpn_test

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"github.com/go-logr/logr"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
	"github.com/sdncni/sdncni/internal/testenv"
	"github.com/sdncni/sdncni/pkg/attach"
	"github.com/sdncni/sdncni/pkg/ovs"
	"github.com/sdncni/sdncni/pkg/vpn"
)

// TestBlockLimitPerVPN: a VPN that holds its bound of blocks gets no more: a node's
// claim fails with an error that the CNI server answers with code 11 (try again
// later), a Warning event on the VPN, and the cluster role's BlockLimitReached; another
// VPN claims as before.
func TestBlockLimitPerVPN(t *testing.T) {
	api := testenv.StartAPIServer(t)
	o := testenv.StartOVN(t)
	ctx := testCtx(t)
	for _, ns := range []string{"na", "nc"} {
		require.NoError(t, api.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	}
	createVPN(ctx, t, api.Client, "full", "na") // 10.77.0.0/24, /26 blocks: four
	setID(ctx, t, api.Client, "full", 7)
	require.NoError(t, api.Client.Create(ctx, &v1alpha1.VirtualPrivateNetwork{ObjectMeta: metav1.ObjectMeta{Name: "other"},
		Spec: v1alpha1.VirtualPrivateNetworkSpec{CIDR: "10.78.0.0/24", Namespaces: []string{"nc"}}}))
	setID(ctx, t, api.Client, "other", 8)
	for i, node := range []string{"node-2", "node-3"} {
		require.NoError(t, api.Client.Create(ctx, v1alpha1.NewVPNBlock("full", netip.MustParsePrefix(fmt.Sprintf("10.77.0.%d/26", 64*i)), node)))
	}
	events := record.NewFakeRecorder(100)
	nodes := vpn.NewNodeNetworks(api.Client, api.Client, "node-1", 1400, logr.Discard())
	nodes.LimitBlocks(2, events)

	_, err := nodes.ForNamespace(ctx, "na")
	require.ErrorIs(t, err, vpn.ErrBlockLimit)
	require.True(t, errors.Is(err, attach.ErrNetworkNotReady), "the CNI server answers code 11: %v", err)
	require.Contains(t, err.Error(), "vpn full holds 2 blocks, at most 2 per VPN")
	requireEvent(t, events, "Warning BlocksAtLimit node node-1 needs one more address block")
	var blocks v1alpha1.VPNBlockList
	require.NoError(t, api.Client.List(ctx, &blocks, client.MatchingLabels{v1alpha1.LabelVPN: "full"}))
	require.Len(t, blocks.Items, 2, "no third block")

	net, err := nodes.ForNamespace(ctx, "nc")
	require.NoError(t, err, "another VPN is not bounded by full's blocks")
	require.Len(t, net.Ranges, 1)

	nb, err := ovs.NewNorthbound(ctx, o.NBDB, logr.Discard())
	require.NoError(t, err)
	t.Cleanup(nb.Close)
	cr := &vpn.ClusterReconciler{Client: api.Client, API: api.Client, NB: nb, Recorder: events, DefaultMTU: 1400,
		BlocksPerVPN: 2, Log: logr.Discard()}
	for _, name := range []string{"full", "other"} {
		require.NoError(t, retryConflict(func() error {
			_, err := cr.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKey{Name: name}})
			return err
		}))
	}
	c := limitCondition(ctx, t, api.Client, "full", v1alpha1.ConditionBlockLimitReached)
	require.NotNil(t, c)
	require.Equal(t, metav1.ConditionTrue, c.Status)
	require.Contains(t, c.Message, "blocks: 2, at most 2 per VPN")
	require.Nil(t, limitCondition(ctx, t, api.Client, "other", v1alpha1.ConditionBlockLimitReached), "never at its bound: no condition")
}
