package vpn

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
	"github.com/sdncni/sdncni/pkg/attach"
)

// NodeNetworks serves attach.Networks from the API: a pod's namespace selects its VPN,
// and this node's VPNBlocks of that VPN are the ranges it allocates from. Reads come from
// the informer cache; only claiming a block writes to the API.
type NodeNetworks struct {
	cache      client.Reader
	api        client.Client
	node       string
	defaultMTU int
	log        logr.Logger
	// growMu serialises claiming blocks (Grow) and giving them back (BlockReleaser).
	growMu  sync.Mutex
	onBlock func(ctx context.Context, net attach.Network)
	// addrs is the node's address store; Grow lifts the fence of a block it claims.
	addrs unfencer
	// reported holds the UIDs of invalid blocks already logged (network runs per ADD).
	reported sync.Map
	// blockLimit bounds the blocks of one VPN (LimitBlocks, blocklimit.go).
	blockLimit blockLimit
}

// OnBlock registers f to run after Grow has claimed a block (f gets the network with
// its new ranges), before the ADD that needed it allocates: the gateway uses it to set
// up the VPN's management port. f must not fail the ADD; it reports its own errors.
func (n *NodeNetworks) OnBlock(f func(ctx context.Context, net attach.Network)) { n.onBlock = f }

// unfencer is what Grow needs of the node's address store (*ipam.Store).
type unfencer interface {
	Unfence(ctx context.Context, pool string, r netip.Prefix) error
}

// UseAddresses tells n the node's address store, in which BlockReleaser fences the
// blocks it gives back: Grow lifts the fence of a block when it claims the block again.
// Call it before the first ADD whenever blocks are given back.
func (n *NodeNetworks) UseAddresses(a unfencer) { n.addrs = a }

var (
	_ attach.Networks = (*NodeNetworks)(nil)
	_ attach.Grower   = (*NodeNetworks)(nil)
)

// NewNodeNetworks returns the node role's view of the VPNs. cache must serve VPNs,
// VPNBlocks, VPNIDs and Namespaces; api is used to create VPNBlocks. A VPN whose id
// another VPN carries (IDHolders) is not served: no new pods, not in All or ByName.
func NewNodeNetworks(cache client.Reader, api client.Client, node string, defaultMTU int, log logr.Logger) *NodeNetworks {
	return &NodeNetworks{cache: cache, api: api, node: node, defaultMTU: defaultMTU, log: log}
}

// ForNamespace implements attach.Networks. It returns (wrapped) ErrConflict when two VPNs
// claim the namespace and ErrNotReady when its VPN is not realised yet; both map to CNI
// code 11. A VPN with no block on this node yet gets its first block here.
func (n *NodeNetworks) ForNamespace(ctx context.Context, namespace string) (attach.Network, error) {
	vpns, claims, err := ReadClaims(ctx, n.cache)
	if err != nil {
		return attach.Network{}, err
	}
	owner, err := claims.Owner(namespace)
	if err != nil {
		return attach.Network{}, err
	}
	for i := range vpns {
		if vpns[i].Name != owner {
			continue
		}
		v := &vpns[i]
		if !v.DeletionTimestamp.IsZero() {
			return attach.Network{}, fmt.Errorf("%w: vpn %s is being deleted", ErrNotReady, owner)
		}
		if err := n.checkID(ctx, vpns, v); err != nil {
			return attach.Network{}, err
		}
		net, err := n.network(ctx, v)
		if err != nil {
			return attach.Network{}, err
		}
		if len(net.Ranges) == 0 {
			return n.Grow(ctx, net)
		}
		return net, nil
	}
	return attach.Network{}, fmt.Errorf("%w: vpn %s of namespace %s does not exist", ErrNotReady, owner, namespace)
}

// network builds the attach.Network of v with this node's blocks.
func (n *NodeNetworks) network(ctx context.Context, v *v1alpha1.VirtualPrivateNetwork) (attach.Network, error) {
	if v.Status.VPNID == 0 {
		return attach.Network{}, fmt.Errorf("%w: vpn %s has no id yet", ErrNotReady, v.Name)
	}
	cidr, err := netip.ParsePrefix(v.Spec.CIDR)
	if err != nil || !cidr.Addr().Is4() {
		return attach.Network{}, fmt.Errorf("%w: vpn %s cidr %q is not IPv4", ErrNotReady, v.Name, v.Spec.CIDR)
	}
	net := attach.Network{Name: v.Name, ID: v.Status.VPNID, Prefix: cidr.Masked(), Gateway: Gateway(cidr),
		MTU: n.defaultMTU, FastPath: v.Spec.FastPath == nil || *v.Spec.FastPath}
	if v.Spec.MTU != nil {
		net.MTU = int(*v.Spec.MTU)
	}
	var blocks v1alpha1.VPNBlockList
	if err := n.cache.List(ctx, &blocks, client.MatchingLabels{v1alpha1.LabelVPN: v.Name, v1alpha1.LabelNode: n.node}); err != nil {
		return attach.Network{}, fmt.Errorf("list blocks of %s: %w", v.Name, err)
	}
	for i := range blocks.Items {
		b := &blocks.Items[i]
		if b.Spec.Node != n.node {
			continue
		}
		p, err := v1alpha1.CheckBlock(v, b)
		if err != nil {
			// Never an address of it: not the VPN's, so not this node's to hand out.
			if _, seen := n.reported.LoadOrStore(b.UID, true); !seen {
				n.log.Error(err, "ignoring address block", "vpn", v.Name, "block", b.Name)
			}
			continue
		}
		net.Ranges = append(net.Ranges, p)
	}
	sort.Slice(net.Ranges, func(i, j int) bool { return net.Ranges[i].Addr().Less(net.Ranges[j].Addr()) })
	return net, nil
}

// ByName implements attach.Networks; it also returns VPNs being deleted, whose pods
// still need DEL and CHECK.
func (n *NodeNetworks) ByName(name string) (attach.Network, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var vpns v1alpha1.VirtualPrivateNetworkList
	if err := n.cache.List(ctx, &vpns); err != nil {
		return attach.Network{}, false
	}
	for i := range vpns.Items {
		if v := &vpns.Items[i]; v.Name == name {
			if n.checkID(ctx, vpns.Items, v) != nil {
				return attach.Network{}, false
			}
			net, err := n.network(ctx, v)
			return net, err == nil
		}
	}
	return attach.Network{}, false
}

// All implements attach.Networks: every realised VPN.
func (n *NodeNetworks) All() []attach.Network {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	vpns, ok, refused, err := readIDHolders(ctx, n.cache)
	if err != nil {
		return nil
	}
	n.reportRefused(refused)
	var out []attach.Network
	for i := range vpns {
		if !ok[vpns[i].Name] {
			continue
		}
		if net, err := n.network(ctx, &vpns[i]); err == nil {
			out = append(out, net)
		}
	}
	return out
}

// checkID returns (wrapped) ErrIDConflict when v's id is another VPN's (IDHolders over
// vpns and the cached VPNID claims), and reports it.
func (n *NodeNetworks) checkID(ctx context.Context, vpns []v1alpha1.VirtualPrivateNetwork, v *v1alpha1.VirtualPrivateNetwork) error {
	if v.Status.VPNID == 0 {
		return nil // network() says not ready
	}
	var claims v1alpha1.VPNIDList
	if err := n.cache.List(ctx, &claims); err != nil {
		return fmt.Errorf("list vpn ids: %w", err)
	}
	ok, refused := IDHolders(vpns, claims.Items)
	if ok[v.Name] {
		return nil
	}
	for _, r := range refused {
		if r.VPN == v.Name {
			n.reportRefused([]IDRefusal{r})
			return fmt.Errorf("%w: %w", ErrIDConflict, r)
		}
	}
	return fmt.Errorf("%w: vpn %s id %d", ErrIDConflict, v.Name, v.Status.VPNID)
}

func (n *NodeNetworks) reportRefused(refused []IDRefusal) {
	for _, r := range refused {
		n.log.Error(r, "not serving vpn: another vpn carries its id (two vpns keyed alike would share the fast path)",
			"vpn", r.VPN, "id", r.ID, "holder", r.Holder, "reason", v1alpha1.ReasonIDConflict)
	}
}

// Grow implements attach.Grower: it claims the first free block of net's CIDR for this
// node by creating its VPNBlock. It never takes a block that overlaps one this node
// holds in any VPN, so on one node each address belongs to at most one VPN and the node
// can route every block to its VPN (see docs/gateway.md). The API server refuses a second object of the same name,
// so two nodes racing for a block cannot both win.
func (n *NodeNetworks) Grow(ctx context.Context, net attach.Network) (attach.Network, error) {
	n.growMu.Lock()
	defer n.growMu.Unlock()
	var v v1alpha1.VirtualPrivateNetwork
	if err := n.cache.Get(ctx, client.ObjectKey{Name: net.Name}, &v); err != nil {
		return net, fmt.Errorf("get vpn %s: %w", net.Name, err)
	}
	size := int(v.Spec.NodeBlockSize)
	if size == 0 {
		size = v1alpha1.DefaultNodeBlockSize
	}
	count, block, err := Blocks(net.Prefix, size)
	if err != nil {
		return net, err
	}
	held, err := n.heldBlocks(ctx)
	if err != nil {
		return net, err
	}
	held = append(held, net.Ranges...)
	if err := n.underBlockLimit(ctx, &v); err != nil {
		return net, err
	}
	for i := 0; ; i++ {
		i = NextFreeBlock(i, count, block, held)
		if i < 0 {
			break
		}
		p := block(i)
		b := v1alpha1.NewVPNBlock(net.Name, p, n.node)
		n.ownByNode(ctx, b)
		err := n.api.Create(ctx, b)
		if apierrors.IsAlreadyExists(err) {
			var cur v1alpha1.VPNBlock
			if gerr := n.api.Get(ctx, client.ObjectKeyFromObject(b), &cur); gerr == nil && cur.Spec.Node == n.node {
				// Ours already: the cache had not seen it, or a release of it stopped
				// between its fence and its deletion (the block stays ours, so open it).
				if err := n.unfence(ctx, net.Name, p); err != nil {
					return net, err
				}
				net.Ranges = append(net.Ranges, p)
				n.claimed(ctx, net)
				return net, nil
			}
			continue
		}
		if err != nil {
			return net, fmt.Errorf("claim block %s of %s: %w", p, net.Name, err)
		}
		n.log.Info("claimed address block", "vpn", net.Name, "block", p)
		if err := n.unfence(ctx, net.Name, p); err != nil {
			return net, err // claimed but closed: given back as empty later
		}
		net.Ranges = append(net.Ranges, p)
		n.claimed(ctx, net)
		return net, nil
	}
	return net, fmt.Errorf("%w: %s (/%d blocks)", ErrNoBlocks, net.Prefix, size)
}

// ownByNode makes this node's Node object the owner of block b, when the Node exists:
// the garbage collector then releases a deleted node's blocks (issue 12, item 8). With
// no Node object (the local demo, the test harness) the block has no owner and lives
// until its VPN goes, as before.
func (n *NodeNetworks) ownByNode(ctx context.Context, b *v1alpha1.VPNBlock) {
	var node corev1.Node
	if err := n.api.Get(ctx, client.ObjectKey{Name: n.node}, &node); err != nil {
		if !apierrors.IsNotFound(err) {
			n.log.Error(err, "read this node's Node object: the new block gets no owner", "block", b.Name)
		}
		return
	}
	b.OwnerReferences = append(b.OwnerReferences, metav1.OwnerReference{APIVersion: "v1", Kind: "Node",
		Name: node.Name, UID: node.UID})
}

// unfence opens block p of vpn in the address store: this node gave it back once (and
// fenced it), and holds it again.
func (n *NodeNetworks) unfence(ctx context.Context, vpn string, p netip.Prefix) error {
	if n.addrs == nil {
		return nil
	}
	if err := n.addrs.Unfence(ctx, vpn, p); err != nil {
		return fmt.Errorf("claim block %s of %s: %w", p, vpn, err)
	}
	return nil
}

func (n *NodeNetworks) claimed(ctx context.Context, net attach.Network) {
	if n.onBlock != nil {
		n.onBlock(ctx, net)
	}
}

// heldBlocks lists the blocks this node holds in every VPN, read from the API server
// (not the cache) so a block claimed a moment ago counts.
func (n *NodeNetworks) heldBlocks(ctx context.Context) ([]netip.Prefix, error) {
	var blocks v1alpha1.VPNBlockList
	if err := n.api.List(ctx, &blocks, client.MatchingLabels{v1alpha1.LabelNode: n.node}); err != nil {
		return nil, fmt.Errorf("list blocks of node %s: %w", n.node, err)
	}
	var out []netip.Prefix
	for _, b := range blocks.Items {
		if p, err := netip.ParsePrefix(b.Spec.CIDR); err == nil && b.Spec.Node == n.node {
			out = append(out, p.Masked())
		}
	}
	return out, nil
}

// EnsureBlock makes this node hold a block of VPN name (claiming its first free one if
// it holds none), so the node has a management port in it even without pods of it: the
// way in for the VPN's shared Services. A VPN that is not realised yet is left for later.
func (n *NodeNetworks) EnsureBlock(ctx context.Context, name string) error {
	var v v1alpha1.VirtualPrivateNetwork
	if err := n.cache.Get(ctx, client.ObjectKey{Name: name}, &v); apierrors.IsNotFound(err) {
		return nil // not created yet: its creation re-runs the caller
	} else if err != nil {
		return fmt.Errorf("get vpn %s: %w", name, err)
	}
	net, err := n.network(ctx, &v)
	if err != nil || len(net.Ranges) > 0 {
		return nil //nolint:nilerr // not realised yet: its status change re-runs the caller
	}
	// The cache may not have seen a block claimed a moment ago: ask the API server.
	var blocks v1alpha1.VPNBlockList
	if err := n.api.List(ctx, &blocks, client.MatchingLabels{v1alpha1.LabelVPN: name, v1alpha1.LabelNode: n.node}); err != nil {
		return fmt.Errorf("list blocks of %s: %w", name, err)
	}
	if len(blocks.Items) > 0 {
		return nil
	}
	_, err = n.Grow(ctx, net)
	return err
}
