package gateway

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"time"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
	"github.com/sdncni/sdncni/pkg/attach"
)

// networks resolves a realised VPN (*vpn.NodeNetworks).
type networks interface {
	ByName(name string) (attach.Network, bool)
}

// Reconciler runs on every node (no leader election): each VPN that is realised and of
// which this node holds blocks gets its management port; a VPN that is gone or has no
// blocks here loses it. A VPN being deleted keeps what it has until it is gone.
type Reconciler struct {
	Cache    client.Reader // informer cache: VPNs
	API      client.Reader // the API server itself: this node's blocks, fresh
	Networks networks
	Gateway  *Gateway
	Node     string
	Log      logr.Logger
}

// SetupWithManager registers the reconciler for VPNs and this node's VPNBlocks.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	no := false
	toVPN := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		if o.GetLabels()[v1alpha1.LabelNode] != r.Node {
			return nil
		}
		return []reconcile.Request{{NamespacedName: client.ObjectKey{Name: o.GetLabels()[v1alpha1.LabelVPN]}}}
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("vpn-gateway").
		For(&v1alpha1.VirtualPrivateNetwork{}).
		Watches(&v1alpha1.VPNBlock{}, toVPN).
		WithOptions(controller.Options{NeedLeaderElection: &no}).
		Complete(r)
}

// Reconcile implements reconcile.Reconciler.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	name := req.Name
	var v v1alpha1.VirtualPrivateNetwork
	err := r.Cache.Get(ctx, req.NamespacedName, &v)
	if client.IgnoreNotFound(err) != nil {
		return ctrl.Result{}, err
	}
	if err != nil {
		return ctrl.Result{}, r.Gateway.Remove(ctx, name)
	}
	if !v.DeletionTimestamp.IsZero() {
		// Its pods keep working until they are deleted, node access included; the port
		// goes when the VPN is gone.
		return ctrl.Result{}, nil
	}
	net, ok := r.Networks.ByName(name)
	if !ok {
		return ctrl.Result{}, nil // not realised yet; its status update brings it back
	}
	blocks, err := r.blocks(ctx, name)
	if err != nil {
		return ctrl.Result{}, err
	}
	net.Ranges = blocks
	if err := r.Gateway.Ensure(ctx, net); err != nil {
		r.Log.Error(err, "management port", "vpn", name)
		return ctrl.Result{RequeueAfter: 2 * time.Second}, nil
	}
	return ctrl.Result{}, nil
}

// EnsureVPN does what Reconcile does for a VPN that net describes, with this node's
// blocks read fresh; for NodeNetworks.OnBlock.
func (r *Reconciler) EnsureVPN(ctx context.Context, net attach.Network) error {
	blocks, err := r.blocks(ctx, net.Name)
	if err != nil {
		return err
	}
	net.Ranges = blocks
	return r.Gateway.Ensure(ctx, net)
}

func (r *Reconciler) blocks(ctx context.Context, vpn string) ([]netip.Prefix, error) {
	var l v1alpha1.VPNBlockList
	if err := r.API.List(ctx, &l, client.MatchingLabels{v1alpha1.LabelVPN: vpn, v1alpha1.LabelNode: r.Node}); err != nil {
		return nil, fmt.Errorf("list blocks of %s on %s: %w", vpn, r.Node, err)
	}
	var out []netip.Prefix
	for _, b := range l.Items {
		if p, err := netip.ParsePrefix(b.Spec.CIDR); err == nil && b.Spec.Node == r.Node && b.Spec.VPN == vpn {
			out = append(out, p.Masked())
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr().Less(out[j].Addr()) })
	return out, nil
}
