package vpn

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
)

// kickQueue bounds the Services queued again by another Service's event (admission
// changes under ServicesPerVPN); more are dropped and left to Resync.
const kickQueue = 4096

// SetupWithManager registers the reconciler: a Service is reconciled when it, one of
// its EndpointSlices or its Namespace changes, and every Service when a VPN is created,
// deleted, realised or its spec changes (ownership may move); a VPN's status writes
// (pod counts, conditions) re-run nothing. Sweep runs at start and every Resync, under
// the same leader election.
func (r *ServiceReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.kick = make(chan event.GenericEvent, kickQueue)
	slice := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		name := o.GetLabels()[discoveryv1.LabelServiceName]
		if name == "" {
			return nil
		}
		return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: o.GetNamespace(), Name: name}}}
	})
	services := func(ctx context.Context, opts ...client.ListOption) []reconcile.Request {
		var l corev1.ServiceList
		if err := r.Client.List(ctx, &l, opts...); err != nil {
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(l.Items))
		for _, s := range l.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&s)})
		}
		return reqs
	}
	ns := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		return services(ctx, client.InNamespace(o.GetName()))
	})
	all := func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		for _, req := range services(ctx) {
			q.Add(req)
		}
	}
	vpns := handler.Funcs{
		CreateFunc: func(ctx context.Context, _ event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			all(ctx, q)
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			if vpnChangeMatters(e.ObjectOld, e.ObjectNew) {
				all(ctx, q)
			}
		},
		DeleteFunc: func(ctx context.Context, _ event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			all(ctx, q)
		},
	}
	if err := mgr.Add(manager.RunnableFunc(r.sweepEvery)); err != nil {
		return fmt.Errorf("add service sweep: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("service").
		For(&corev1.Service{}).
		Watches(&discoveryv1.EndpointSlice{}, slice).
		Watches(&corev1.Namespace{}, ns).
		Watches(&v1alpha1.VirtualPrivateNetwork{}, vpns).
		WatchesRawSource(source.Channel(r.kick, &handler.EnqueueRequestForObject{})).
		Complete(r)
}

// vpnChangeMatters reports whether a VPN update can change any Service's load
// balancers: its spec (namespaces, CIDR), its realisation or its deletion.
func vpnChangeMatters(o, n client.Object) bool {
	a, okA := o.(*v1alpha1.VirtualPrivateNetwork)
	b, okB := n.(*v1alpha1.VirtualPrivateNetwork)
	if !okA || !okB {
		return true
	}
	return !equality.Semantic.DeepEqual(a.Spec, b.Spec) || (a.Status.OVN == nil) != (b.Status.OVN == nil) ||
		a.DeletionTimestamp.IsZero() != b.DeletionTimestamp.IsZero()
}

// sweepEvery runs Sweep now and every Resync until ctx ends (errors are logged: the
// next round tries again).
func (r *ServiceReconciler) sweepEvery(ctx context.Context) error {
	every := r.Resync
	if every <= 0 {
		every = time.Minute
	}
	for {
		if err := r.Sweep(ctx); err != nil && ctx.Err() == nil {
			r.Log.Error(err, "sweep service load balancers")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
	}
}

// Sweep removes the load balancers of Services that are gone (deleted while no event
// could say so, e.g. during a restart), counts every backend from NB again and makes
// every VPN's endpoint routes exactly those of its load balancers' backends in it. It
// reads every owned row: the full check that single events no longer make.
func (r *ServiceReconciler) Sweep(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refs = nil
	owned, err := r.NB.ListOwnedLoadBalancers(ctx)
	if err != nil {
		return err
	}
	kept := owned[:0]
	for _, lb := range owned {
		gone, err := r.serviceGone(ctx, lb.Service)
		if err != nil {
			return err
		}
		if !gone {
			kept = append(kept, lb)
			continue
		}
		if err := r.NB.DeleteLoadBalancer(ctx, lb.Name); err != nil {
			return fmt.Errorf("service %s: %w", lb.Service, err)
		}
		r.Log.V(1).Info("load balancer removed", "name", lb.Name, "service", lb.Service)
	}
	var vpns v1alpha1.VirtualPrivateNetworkList
	if err := r.Client.List(ctx, &vpns); err != nil {
		return fmt.Errorf("list vpns: %w", err)
	}
	cidrs := map[string]netip.Prefix{}
	for _, v := range vpns.Items {
		if p, err := netip.ParsePrefix(v.Spec.CIDR); err == nil {
			cidrs[v.Name] = p.Masked()
		}
	}
	eps := map[string][]netip.Addr{}
	for _, lb := range kept {
		for _, a := range backendAddrs(lb.VIPs) {
			if cidrs[lb.Network].Contains(a) && !slices.Contains(eps[lb.Network], a) {
				eps[lb.Network] = append(eps[lb.Network], a)
			}
		}
	}
	if err := r.NB.SetEndpointRoutes(ctx, eps); err != nil {
		return err
	}
	r.refs = newBackendRefs(kept)
	return nil
}

func (r *ServiceReconciler) serviceGone(ctx context.Context, key string) (bool, error) {
	ns, name, ok := strings.Cut(key, "/")
	if !ok {
		return false, nil // not ours to judge
	}
	var svc corev1.Service
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &svc)
	if err != nil {
		if client.IgnoreNotFound(err) == nil {
			return true, nil
		}
		return false, fmt.Errorf("get service %s: %w", key, err)
	}
	return false, nil
}
