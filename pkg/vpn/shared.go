package vpn

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
	"github.com/sdncni/sdncni/pkg/gateway"
)

// DefaultDNSService is the cluster DNS Service every VPN reaches unless configured
// otherwise.
const DefaultDNSService = "kube-system/kube-dns"

// sharedGateway is what SharedServiceReconciler needs of the node's gateway
// (*gateway.Gateway).
type sharedGateway interface {
	SetShared(ctx context.Context, services []gateway.SharedService) error
}

// blockHolder is what SharedServiceReconciler needs of the node's networks
// (*NodeNetworks).
type blockHolder interface {
	EnsureBlock(ctx context.Context, vpn string) error
}

var (
	_ sharedGateway = (*gateway.Gateway)(nil)
	_ blockHolder   = (*NodeNetworks)(nil)
)

// SharedServiceReconciler runs on every node (no leader election). It finds the shared
// Services — the cluster DNS Service and those a VPN lists in spec.sharedServices for a
// namespace it owns — and has the node's gateway DNAT their ClusterIPs, for pods of
// every other VPN, to their ready endpoints inside the owning VPN (docs/services.md).
// The owning VPN's own pods reach them through its OVN load balancer as usual. This node
// claims a block of each owning VPN, so it has a management port there.
type SharedServiceReconciler struct {
	Cache    client.Reader // informer cache: Services, EndpointSlices, VPNs, Namespaces
	Networks blockHolder
	Gateway  sharedGateway
	// DNS is the cluster DNS Service as "namespace/name"; "" shares none.
	DNS string
	// ClusterVPN is the default VPN, whose pods on every node this node reaches
	// (gateway.Config.ClusterVPN): the node holds a block of it, and so a management
	// port, even without pods of it. "" for none.
	ClusterVPN string
	Log        logr.Logger
}

// SetupWithManager registers the reconciler to run on every node.
func (r *SharedServiceReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return completeOnServiceChanges(mgr, "shared-services", r)
}

// completeOnServiceChanges registers r on every node (no leader election) under one
// request that any change of a VPN, VPNBlock, Namespace, Service or EndpointSlice
// queues (wholeStateController). (A block given back must be claimed again where it is
// still needed, and leaves the node's own endpoints.)
func completeOnServiceChanges(mgr ctrl.Manager, name string, r reconcile.Reconciler) error {
	return wholeStateController(mgr, name, r, &v1alpha1.VirtualPrivateNetwork{}, &v1alpha1.VPNBlock{},
		&corev1.Namespace{}, &corev1.Service{}, &discoveryv1.EndpointSlice{})
}

// wholeStateController registers r on every node (no leader election) under one
// request, named name, that any change of an object of the given kinds queues: r
// recomputes its whole state each time, and the queue folds bursts into one run.
func wholeStateController(mgr ctrl.Manager, name string, r reconcile.Reconciler, kinds ...client.Object) error {
	no := false
	one := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: client.ObjectKey{Name: name}}}
	})
	b := ctrl.NewControllerManagedBy(mgr).Named(name)
	for _, k := range kinds {
		b = b.Watches(k, one)
	}
	return b.WithOptions(controller.Options{NeedLeaderElection: &no, MaxConcurrentReconciles: 1}).Complete(r)
}

// Reconcile implements reconcile.Reconciler.
func (r *SharedServiceReconciler) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	services, err := r.Shared(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	var errs []error
	for _, v := range holders(r.ClusterVPN, services) {
		if err := r.Networks.EnsureBlock(ctx, v); err != nil {
			errs = append(errs, fmt.Errorf("block of vpn %s for its shared services (or the default vpn): %w", v, err))
		}
	}
	if err := r.Gateway.SetShared(ctx, services); err != nil {
		errs = append(errs, err)
	}
	return ctrl.Result{}, errors.Join(errs...)
}

// Holders returns the VPNs of which this node holds a block, and so a management port,
// even without pods of them: the default VPN (ClusterVPN) and every VPN that shares a
// Service. The block is what gives the node an address of its own in the VPN, to which
// the VPN's pods answer: the source of the shared Service's connections from this
// node's pods of other VPNs and from its host-network processes (docs/services.md).
// BlockReleaser keeps one block of each.
func (r *SharedServiceReconciler) Holders(ctx context.Context) (map[string]bool, error) {
	services, err := r.Shared(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, v := range holders(r.ClusterVPN, services) {
		out[v] = true
	}
	return out, nil
}

// holders lists clusterVPN (if set) and the VPNs of services, each once, in order.
func holders(clusterVPN string, services []gateway.SharedService) []string {
	var out []string
	seen := map[string]bool{}
	if clusterVPN != "" {
		seen[clusterVPN] = true
		out = append(out, clusterVPN)
	}
	for _, s := range services {
		if !seen[s.VPN] {
			seen[s.VPN] = true
			out = append(out, s.VPN)
		}
	}
	return out
}

// Shared computes the shared Services from the cache. A listed Service that does not
// exist, is headless or not a ClusterIP, or whose namespace the listing VPN does not own
// (or is in conflict), is left out.
func (r *SharedServiceReconciler) Shared(ctx context.Context) ([]gateway.SharedService, error) {
	vpns, claims, err := ReadClaims(ctx, r.Cache)
	if err != nil {
		return nil, err
	}
	byName := map[string]*v1alpha1.VirtualPrivateNetwork{}
	for i := range vpns {
		byName[vpns[i].Name] = &vpns[i]
	}
	// Service → the VPN that shares it (the owner of its namespace).
	want := map[string]string{}
	if r.DNS != "" {
		if ns, _, ok := strings.Cut(r.DNS, "/"); ok {
			if owner, err := claims.Owner(ns); err == nil {
				want[r.DNS] = owner
			}
		}
	}
	for _, v := range vpns {
		for _, key := range v.Spec.SharedServices {
			ns, _, ok := strings.Cut(key, "/")
			if !ok {
				continue
			}
			if owner, err := claims.Owner(ns); err == nil && owner == v.Name {
				want[key] = owner
			} else {
				r.Log.V(1).Info("shared service ignored: the vpn does not own its namespace", "vpn", v.Name, "service", key)
			}
		}
	}
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []gateway.SharedService
	for _, key := range keys {
		v := byName[want[key]]
		if v == nil || v.Status.VPNID == 0 || v.Status.OVN == nil || !v.DeletionTimestamp.IsZero() {
			continue // not realised (yet), or going: its status change re-runs this
		}
		cidr, err := netip.ParsePrefix(v.Spec.CIDR)
		if err != nil || !cidr.Addr().Is4() {
			continue
		}
		s, ok, err := r.service(ctx, key)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		s.VPN, s.VPNID, s.Prefix = v.Name, v.Status.VPNID, cidr.Masked()
		out = append(out, s)
	}
	return out, nil
}

// service reads Service key and its EndpointSlices as a SharedService (VPN unset).
func (r *SharedServiceReconciler) service(ctx context.Context, key string) (gateway.SharedService, bool, error) {
	ns, name, _ := strings.Cut(key, "/")
	var svc corev1.Service
	if err := r.Cache.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &svc); err != nil {
		if apierrors.IsNotFound(err) {
			return gateway.SharedService{}, false, nil
		}
		return gateway.SharedService{}, false, fmt.Errorf("get service %s: %w", key, err)
	}
	if !svc.DeletionTimestamp.IsZero() || svc.Spec.Type == corev1.ServiceTypeExternalName ||
		svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == corev1.ClusterIPNone {
		return gateway.SharedService{}, false, nil
	}
	var eps discoveryv1.EndpointSliceList
	if err := r.Cache.List(ctx, &eps, client.InNamespace(ns), client.MatchingLabels{discoveryv1.LabelServiceName: name}); err != nil {
		return gateway.SharedService{}, false, fmt.Errorf("list endpointslices of %s: %w", key, err)
	}
	s := gateway.SharedService{Name: key}
	for _, p := range ServicePorts(&svc, eps.Items) {
		s.Ports = append(s.Ports, gateway.SharedPort{Protocol: p.Protocol, VIP: p.VIP, Endpoints: p.Backends})
	}
	return s, true, nil
}
