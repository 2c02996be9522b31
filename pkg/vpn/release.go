package vpn

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
	"github.com/sdncni/sdncni/pkg/attach"
	"github.com/sdncni/sdncni/pkg/ipam"
)

// addressFences is what giving blocks back needs of the node's address store
// (*ipam.Store): who holds what, and the fence that closes a block to allocation.
type addressFences interface {
	List(ctx context.Context) ([]ipam.Allocation, error)
	Fence(ctx context.Context, pool string, r netip.Prefix) error
	Unfence(ctx context.Context, pool string, r netip.Prefix) error
}

// portRemover is what giving a VPN's last block back needs of the node's gateway
// (*gateway.Gateway): its management port holds an address of the block.
type portRemover interface {
	Remove(ctx context.Context, vpn string) error
}

var _ addressFences = (*ipam.Store)(nil)

// BlockReleaser gives back this node's address blocks that no pod has used for After
// (docs/ipam.md, "Giving blocks back"). Of a VPN with pods on the node, or one the node
// must reach without pods of it (Keep: the default VPN, VPNs that share a Service), it
// keeps the block with the management port's address (else the lowest) and gives back
// the other empty ones; of any other VPN it gives back every block, the management port
// first. Each block goes in two steps under the lock Grow claims under: the address
// store fences it (checking, in the same locked step, that no address of it is held),
// then its VPNBlock is deleted. An ADD that read the block a moment before allocates
// elsewhere (the fence) or claims a new block; the fence stays until this node claims
// the block again (Grow lifts it). Run it only once restart reconciliation has put every
// running pod's address back into the store: an address missing there looks free.
type BlockReleaser struct {
	Networks  *NodeNetworks
	Addresses addressFences
	// Gateway removes a VPN's management port before its last block goes; nil: none.
	Gateway portRemover
	// Restore builds a VPN's management port again when Gateway removed it but a block
	// stayed: an ADD took an address of it between the pass's look at the store and the
	// fence, so the VPN has a pod on this node after all (the node must reach it, for
	// kubelet's probes). nil: none.
	Restore func(ctx context.Context, vpn string) error
	// Keep returns the VPNs this node keeps a block of even without pods of them
	// (SharedServiceReconciler.Holders); nil: none.
	Keep func(ctx context.Context) (map[string]bool, error)
	// After is how long a block must be seen empty before it goes; 0 gives it back at
	// the first pass that sees it empty.
	After time.Duration
	Now   func() time.Time // default time.Now
	Log   logr.Logger

	mu         sync.Mutex
	emptySince map[string]time.Time // by VPNBlock name
}

// Run gives blocks back every interval until ctx ends; errors are logged and retried.
func (r *BlockReleaser) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := r.Release(ctx); err != nil && ctx.Err() == nil {
			r.Log.Error(err, "give back empty address blocks")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// heldBlock is one of this node's blocks with what the address store holds in it.
type heldBlock struct {
	obj   v1alpha1.VPNBlock
	p     netip.Prefix
	pods  int
	mgmt  bool
	since time.Time // seen without pods since
}

// Release runs one pass and returns the names of the VPNBlocks it deleted.
func (r *BlockReleaser) Release(ctx context.Context) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.Networks
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	var l v1alpha1.VPNBlockList
	if err := n.api.List(ctx, &l, client.MatchingLabels{v1alpha1.LabelNode: n.node}); err != nil {
		return nil, fmt.Errorf("list blocks of node %s: %w", n.node, err)
	}
	allocs, err := r.Addresses.List(ctx)
	if err != nil {
		return nil, err
	}
	keep := map[string]bool{}
	if r.Keep != nil {
		if keep, err = r.Keep(ctx); err != nil {
			return nil, fmt.Errorf("vpns this node keeps a block of: %w", err)
		}
	}
	byVPN := map[string][]*heldBlock{}
	seen := map[string]bool{}
	for i := range l.Items {
		b := &l.Items[i]
		if b.Spec.Node != n.node {
			continue
		}
		var v v1alpha1.VirtualPrivateNetwork // from the cache: one read per block, every pass
		if err := n.cache.Get(ctx, client.ObjectKey{Name: b.Spec.VPN}, &v); err != nil {
			if apierrors.IsNotFound(err) {
				continue // the VPN's deletion takes its blocks
			}
			return nil, fmt.Errorf("get vpn %s: %w", b.Spec.VPN, err)
		}
		p, err := v1alpha1.CheckBlock(&v, b)
		if err != nil || !v.DeletionTimestamp.IsZero() {
			continue // never an address range here; or going with its VPN
		}
		h := &heldBlock{obj: *b, p: p}
		for _, a := range allocs {
			if a.Pool != b.Spec.VPN || !p.Contains(a.Addr.Addr()) {
				continue
			}
			if strings.HasPrefix(a.Owner.ContainerID, attach.NodeOwnerPrefix) {
				h.mgmt = true
			} else {
				h.pods++
			}
		}
		seen[b.Name] = true
		if h.pods > 0 {
			delete(r.emptySince, b.Name)
		} else {
			if r.emptySince == nil {
				r.emptySince = map[string]time.Time{}
			}
			if _, ok := r.emptySince[b.Name]; !ok {
				r.emptySince[b.Name] = now()
			}
			h.since = r.emptySince[b.Name]
		}
		byVPN[b.Spec.VPN] = append(byVPN[b.Spec.VPN], h)
	}
	for name := range r.emptySince {
		if !seen[name] {
			delete(r.emptySince, name)
		}
	}
	vpns := make([]string, 0, len(byVPN))
	for v := range byVPN {
		vpns = append(vpns, v)
	}
	sort.Strings(vpns)
	var released []string
	var errs []error
	for _, v := range vpns {
		got, err := r.releaseVPN(ctx, v, byVPN[v], keep[v], now())
		released = append(released, got...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return released, errors.Join(errs...)
}

// releaseVPN gives back the blocks of vpn that the policy lets go (see BlockReleaser).
func (r *BlockReleaser) releaseVPN(ctx context.Context, vpn string, blocks []*heldBlock, keep bool, now time.Time) ([]string, error) {
	sort.Slice(blocks, func(i, j int) bool { return blocks[i].p.Addr().Less(blocks[j].p.Addr()) })
	pods := 0
	for _, b := range blocks {
		pods += b.pods
	}
	expired := func(b *heldBlock) bool { return b.pods == 0 && now.Sub(b.since) >= r.After }
	leaves := pods == 0 && !keep // the VPN leaves this node once all its blocks expired
	for _, b := range blocks {
		leaves = leaves && expired(b)
	}
	var retain *heldBlock // the block that stays: the management port's, else the lowest
	if !leaves {
		retain = blocks[0]
		for _, b := range blocks {
			if b.mgmt {
				retain = b
				break
			}
		}
	}
	var out []*heldBlock
	for _, b := range blocks {
		if b != retain && expired(b) {
			out = append(out, b)
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	n := r.Networks
	n.growMu.Lock()
	defer n.growMu.Unlock()
	if leaves && r.Gateway != nil {
		// The VPN leaves this node: its management port (and its address in a block)
		// goes first. Should the gateway rebuild it meanwhile, that block's fence fails.
		if err := r.Gateway.Remove(ctx, vpn); err != nil {
			return nil, fmt.Errorf("give back the blocks of %s: %w", vpn, err)
		}
	}
	var released []string
	var errs []error
	stayed := false
	for _, b := range out {
		gone, err := r.release(ctx, b)
		if err != nil {
			errs = append(errs, err)
		}
		if gone {
			released = append(released, b.obj.Name)
		} else {
			stayed = true
		}
	}
	if leaves && stayed && r.Gateway != nil && r.Restore != nil {
		if err := r.Restore(ctx, vpn); err != nil {
			errs = append(errs, fmt.Errorf("restore the management port of %s: %w", vpn, err))
		}
	}
	return released, errors.Join(errs...)
}

// release fences block b in the address store, then deletes its VPNBlock, and says
// whether b is gone. Call with growMu held. A fence that finds an address of b held (an
// ADD got there first) is not an error: b stays.
func (r *BlockReleaser) release(ctx context.Context, b *heldBlock) (bool, error) {
	if err := r.Addresses.Fence(ctx, b.obj.Spec.VPN, b.p); err != nil {
		if errors.Is(err, ipam.ErrInUse) {
			delete(r.emptySince, b.obj.Name)
			return false, nil
		}
		return false, fmt.Errorf("give back block %s: %w", b.obj.Name, err)
	}
	uid := b.obj.UID
	err := r.Networks.api.Delete(ctx, &b.obj, client.Preconditions{UID: &uid})
	if err != nil && !apierrors.IsNotFound(err) {
		// Fenced, still claimed: the next pass deletes it (or Grow takes it back).
		return false, fmt.Errorf("give back block %s: delete: %w", b.obj.Name, err)
	}
	delete(r.emptySince, b.obj.Name)
	r.Log.Info("gave back address block", "vpn", b.obj.Spec.VPN, "block", b.p)
	return true, nil
}
