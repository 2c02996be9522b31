package vpn

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
)

type blockLimit struct {
	max      int
	recorder record.EventRecorder
}

// LimitBlocks bounds the VPNBlocks one VPN may hold over all nodes (Limits.BlocksPerVPN;
// 0: no bound): Grow claims no block of a VPN that holds max, and records a Warning
// event on the VPN (recorder may be nil). Call before serving.
func (n *NodeNetworks) LimitBlocks(maxBlocks int, recorder record.EventRecorder) {
	n.blockLimit = blockLimit{max: maxBlocks, recorder: recorder}
}

// underBlockLimit returns (wrapped) ErrBlockLimit when VPN v holds its bound of blocks,
// counted on the API server (not the cache) like the blocks Grow must not overlap.
func (n *NodeNetworks) underBlockLimit(ctx context.Context, v *v1alpha1.VirtualPrivateNetwork) error {
	if n.blockLimit.max <= 0 {
		return nil
	}
	var blocks v1alpha1.VPNBlockList
	if err := n.api.List(ctx, &blocks, client.MatchingLabels{v1alpha1.LabelVPN: v.Name}); err != nil {
		return fmt.Errorf("list blocks of %s: %w", v.Name, err)
	}
	if len(blocks.Items) < n.blockLimit.max {
		return nil
	}
	err := fmt.Errorf("%w: vpn %s holds %d blocks, at most %d per VPN", ErrBlockLimit, v.Name, len(blocks.Items), n.blockLimit.max)
	if n.blockLimit.recorder != nil {
		n.blockLimit.recorder.Event(v, corev1.EventTypeWarning, v1alpha1.ReasonBlocksAtLimit,
			fmt.Sprintf("node %s needs one more address block: %v", n.node, err))
	}
	return err
}
