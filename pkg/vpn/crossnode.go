package vpn

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
	"github.com/sdncni/sdncni/pkg/datapath"
)

// candidateSink is what CrossNodeReconciler feeds: crossnode.Peers, which writes the
// blocks of the nodes that answer its probes into the datapath.
type candidateSink interface {
	SetCandidates(blocks []datapath.RemoteBlock)
}

// CrossNodeReconciler runs on every node that runs the cross-node fast path (no leader
// election): it turns the other nodes' VPNBlocks into the path's candidate blocks, each
// VPN's block keyed by the VPN's id and sent to the holding node's underlay address
// (UnderlayIP). A block is left out when its VPN is not this node's to program (no id,
// an id another VPN holds: IDHolders), has crossNodeFastPath off, lies outside its VPN
// (CheckBlock) or is not IPv4, or when its node has no underlay IPv4 yet.
type CrossNodeReconciler struct {
	Cache client.Reader
	Node  string // this node: its own blocks are never remote
	// Local is this node's own underlay address (--cross-node-underlay-ip); a Node
	// object that tells the other nodes another one is reported.
	Local netip.Addr
	Peers candidateSink
	Log   logr.Logger

	last     int        // candidates of the last run, for logging changes
	lastSelf netip.Addr // what the own Node said at the last run
}

// SetupWithManager registers the reconciler to run on every node, computing the
// candidates whole on any change.
func (r *CrossNodeReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return wholeStateController(mgr, "vpn-crossnode", r,
		&v1alpha1.VPNBlock{}, &v1alpha1.VirtualPrivateNetwork{}, &v1alpha1.VPNID{}, &corev1.Node{})
}

// Reconcile implements reconcile.Reconciler.
func (r *CrossNodeReconciler) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	vpns, ok, _, err := readIDHolders(ctx, r.Cache)
	if err != nil {
		return ctrl.Result{}, err
	}
	var blocks v1alpha1.VPNBlockList
	if err := r.Cache.List(ctx, &blocks); err != nil {
		return ctrl.Result{}, fmt.Errorf("list vpn blocks: %w", err)
	}
	var nodes corev1.NodeList
	if err := r.Cache.List(ctx, &nodes); err != nil {
		return ctrl.Result{}, fmt.Errorf("list nodes: %w", err)
	}
	for i := range nodes.Items {
		if n := &nodes.Items[i]; n.Name == r.Node {
			if ip, _ := UnderlayIP(n); ip != r.lastSelf {
				r.lastSelf = ip
				if ip != r.Local {
					r.Log.Error(nil, "the other nodes probe this node at the address its Node object gives (annotation "+
						v1alpha1.AnnotationUnderlayIP+", else the first InternalIP), not at --cross-node-underlay-ip: "+
						"unless both reach this node, they keep sending to it over Geneve", "published", ip, "local", r.Local)
				}
			}
		}
	}
	cands, skipped := RemoteBlocks(r.Node, vpns, ok, blocks.Items, nodes.Items)
	for _, s := range skipped {
		r.Log.V(1).Info("block not on the cross-node path", "block", s.Block, "why", s.Why)
	}
	r.Peers.SetCandidates(cands)
	if len(cands) != r.last {
		r.Log.Info("cross-node candidate blocks", "count", len(cands), "skipped", len(skipped))
		r.last = len(cands)
	}
	return ctrl.Result{}, nil
}

// SkippedBlock is a block RemoteBlocks left out, and why.
type SkippedBlock struct {
	Block string // the VPNBlock's name
	Why   string
}

// RemoteBlocks computes the cross-node candidates of node self: every other node's
// block of a VPN that holds its id (ok, from IDHolders) and allows the cross-node path,
// with that VPN's id and the holding node's underlay IPv4, sorted. It also returns what
// it left out. vpns, blocks and nodes may come from a cache in any order.
func RemoteBlocks(self string, vpns []v1alpha1.VirtualPrivateNetwork, ok map[string]bool, blocks []v1alpha1.VPNBlock,
	nodes []corev1.Node) ([]datapath.RemoteBlock, []SkippedBlock) {
	byName := make(map[string]*v1alpha1.VirtualPrivateNetwork, len(vpns))
	for i := range vpns {
		byName[vpns[i].Name] = &vpns[i]
	}
	underlay := make(map[string]netip.Addr, len(nodes))
	for i := range nodes {
		if ip, found := UnderlayIP(&nodes[i]); found {
			underlay[nodes[i].Name] = ip
		}
	}
	var (
		out     []datapath.RemoteBlock
		skipped []SkippedBlock
	)
	skip := func(b *v1alpha1.VPNBlock, why string) {
		skipped = append(skipped, SkippedBlock{Block: b.Name, Why: why})
	}
	for i := range blocks {
		b := &blocks[i]
		if b.Spec.Node == self {
			continue
		}
		v := byName[b.Spec.VPN]
		switch {
		case v == nil:
			skip(b, "no such vpn")
			continue
		case v.Status.VPNID == 0 || !ok[v.Name]:
			skip(b, "the vpn has no id of its own")
			continue
		case v.Status.VPNID > datapath.MaxVNI:
			skip(b, "the vpn id does not fit a VNI")
			continue
		case v.Spec.CrossNodeFastPath != nil && !*v.Spec.CrossNodeFastPath:
			skip(b, "crossNodeFastPath is off")
			continue
		}
		p, err := v1alpha1.CheckBlock(v, b)
		if err != nil {
			skip(b, err.Error())
			continue
		}
		if !p.Addr().Is4() {
			skip(b, "not IPv4")
			continue
		}
		ip, found := underlay[b.Spec.Node]
		if !found {
			skip(b, "node "+b.Spec.Node+" has no underlay IPv4")
			continue
		}
		out = append(out, datapath.RemoteBlock{VPN: v.Status.VPNID, Block: p, Node: ip})
	}
	slices.SortFunc(out, func(a, b datapath.RemoteBlock) int {
		return cmp.Or(cmp.Compare(a.VPN, b.VPN), a.Block.Addr().Compare(b.Block.Addr()), cmp.Compare(a.Block.Bits(), b.Block.Bits()))
	})
	return out, skipped
}

// UnderlayIP is the address other nodes reach n's cross-node path at: the annotation
// v1alpha1.AnnotationUnderlayIP if it holds an IPv4 address, else n's first IPv4
// InternalIP (the kubelet's --node-ip, on most nodes the NIC that carries the tunnels).
func UnderlayIP(n *corev1.Node) (netip.Addr, bool) {
	usable := func(ip netip.Addr) bool {
		return ip.Is4() && !ip.IsUnspecified() && !ip.IsLoopback() && !ip.IsMulticast()
	}
	if a, found := n.Annotations[v1alpha1.AnnotationUnderlayIP]; found {
		ip, err := netip.ParseAddr(a)
		if err == nil && usable(ip) {
			return ip, true
		}
		return netip.Addr{}, false // set but unusable: not the InternalIP behind the admin's back
	}
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		if ip, err := netip.ParseAddr(a.Address); err == nil && usable(ip) {
			return ip, true
		}
	}
	return netip.Addr{}, false
}
