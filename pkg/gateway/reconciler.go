package gateway

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
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
	// Recorder reports blocks that are not routed (CheckBlock) as Warning events on
	// their VPN; optional.
	Recorder record.EventRecorder
	Log      logr.Logger
}

// ReasonInvalidBlock is the event reason of a VPNBlock a node refuses to route.
const ReasonInvalidBlock = "InvalidBlock"

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
	blocks, err := r.blocks(ctx, &v)
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
	var v v1alpha1.VirtualPrivateNetwork
	if err := r.Cache.Get(ctx, client.ObjectKey{Name: net.Name}, &v); err != nil {
		return fmt.Errorf("get vpn %s: %w", net.Name, err)
	}
	blocks, err := r.blocks(ctx, &v)
	if err != nil {
		return err
	}
	net.Ranges = blocks
	return r.Gateway.Ensure(ctx, net)
}

// blocks returns this node's blocks of v that may become routes (v1alpha1.CheckBlock):
// each is a route on the node to v's management port. Others are left out and reported.
func (r *Reconciler) blocks(ctx context.Context, v *v1alpha1.VirtualPrivateNetwork) ([]netip.Prefix, error) {
	var l v1alpha1.VPNBlockList
	if err := r.API.List(ctx, &l, client.MatchingLabels{v1alpha1.LabelVPN: v.Name, v1alpha1.LabelNode: r.Node}); err != nil {
		return nil, fmt.Errorf("list blocks of %s on %s: %w", v.Name, r.Node, err)
	}
	var out []netip.Prefix
	for i := range l.Items {
		b := &l.Items[i]
		if b.Spec.Node != r.Node {
			continue
		}
		p, err := v1alpha1.CheckBlock(v, b)
		if err != nil {
			r.Log.Error(err, "not routing address block", "vpn", v.Name, "block", b.Name)
			if r.Recorder != nil {
				r.Recorder.Eventf(v, corev1.EventTypeWarning, ReasonInvalidBlock, "node %s does not route %s: %v", r.Node, b.Name, err)
			}
			continue
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr().Less(out[j].Addr()) })
	return out, nil
}

// NodeGuard runs on every node (no leader election) and keeps the gateway's node guard
// (Gateway.SetNodes) in step with the cluster: the addresses of every Node and the API
// servers' endpoints (the EndpointSlices of default/kubernetes).
type NodeGuard struct {
	Cache   client.Reader // informer cache: Nodes, EndpointSlices
	Gateway *Gateway
	Log     logr.Logger
}

// nodeGuardKey is the one request every event maps to: the guard is computed whole.
var nodeGuardKey = reconcile.Request{NamespacedName: client.ObjectKey{Name: "node-guard"}}

// SetupWithManager registers the guard for Nodes and the API server's EndpointSlices.
func (r *NodeGuard) SetupWithManager(mgr ctrl.Manager) error {
	no := false
	one := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{nodeGuardKey}
	})
	api := predicate.NewPredicateFuncs(func(o client.Object) bool {
		return o.GetNamespace() == metav1.NamespaceDefault && o.GetLabels()[discoveryv1.LabelServiceName] == "kubernetes"
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("node-guard").
		Watches(&corev1.Node{}, one).
		Watches(&discoveryv1.EndpointSlice{}, one, builder.WithPredicates(api)).
		WithOptions(controller.Options{NeedLeaderElection: &no}).
		Complete(r)
}

// Reconcile implements reconcile.Reconciler.
func (r *NodeGuard) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	var nodes corev1.NodeList
	if err := r.Cache.List(ctx, &nodes); err != nil {
		return ctrl.Result{}, fmt.Errorf("list nodes: %w", err)
	}
	var eps discoveryv1.EndpointSliceList
	if err := r.Cache.List(ctx, &eps, client.InNamespace(metav1.NamespaceDefault),
		client.MatchingLabels{discoveryv1.LabelServiceName: "kubernetes"}); err != nil {
		return ctrl.Result{}, fmt.Errorf("list the API server's endpoints: %w", err)
	}
	addrs, api := NodeAddresses(nodes.Items), APIEndpoints(eps.Items)
	if err := r.Gateway.SetNodes(ctx, addrs, api); err != nil {
		r.Log.Error(err, "node guard", "nodes", len(addrs))
		return ctrl.Result{RequeueAfter: 2 * time.Second}, nil
	}
	return ctrl.Result{}, nil
}

// NodeAddresses returns the IPv4 InternalIP and ExternalIP addresses of nodes.
func NodeAddresses(nodes []corev1.Node) []netip.Addr {
	var out []netip.Addr
	for _, n := range nodes {
		for _, a := range n.Status.Addresses {
			if a.Type != corev1.NodeInternalIP && a.Type != corev1.NodeExternalIP {
				continue
			}
			if ip, err := netip.ParseAddr(a.Address); err == nil && ip.Is4() {
				out = append(out, ip)
			}
		}
	}
	return out
}

// APIEndpoints returns the TCP endpoints (IPv4 address and port) of the API server's
// EndpointSlices that are not marked not-ready.
func APIEndpoints(slices []discoveryv1.EndpointSlice) []netip.AddrPort {
	var out []netip.AddrPort
	for _, s := range slices {
		if s.AddressType != discoveryv1.AddressTypeIPv4 {
			continue
		}
		for _, p := range s.Ports {
			if p.Port == nil || (p.Protocol != nil && *p.Protocol != corev1.ProtocolTCP) {
				continue
			}
			for _, e := range s.Endpoints {
				if e.Conditions.Ready != nil && !*e.Conditions.Ready {
					continue
				}
				for _, a := range e.Addresses {
					if ip, err := netip.ParseAddr(a); err == nil && ip.Is4() {
						out = append(out, netip.AddrPortFrom(ip, uint16(*p.Port)))
					}
				}
			}
		}
	}
	return out
}
