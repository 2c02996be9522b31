package netpol

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/sdncni/sdncni/pkg/attach"
	"github.com/sdncni/sdncni/pkg/ipam"
)

// Isolation answers attach.PodPolicy from the node's informer cache: a pod that any
// NetworkPolicy of its namespace selects (in either direction) stays off the fast path.
type Isolation struct {
	Cache client.Reader
}

var _ attach.PodPolicy = (*Isolation)(nil)

// FastPathAllowed reports whether no policy selects the pod. When the cache cannot
// answer, the pod stays off the fast path: OVS enforces policy either way, the fast
// path only when it is sure there is none.
func (i *Isolation) FastPathAllowed(ctx context.Context, podNamespace, podName string) bool {
	isolated, err := i.isolated(ctx, podNamespace, podName)
	return err == nil && !isolated
}

func (i *Isolation) isolated(ctx context.Context, ns, name string) (bool, error) {
	var pols networkingv1.NetworkPolicyList
	if err := i.Cache.List(ctx, &pols, client.InNamespace(ns)); err != nil {
		return false, fmt.Errorf("list networkpolicies: %w", err)
	}
	if len(pols.Items) == 0 {
		return false, nil
	}
	var pod corev1.Pod
	if err := i.Cache.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &pod); err != nil && !apierrors.IsNotFound(err) {
		return false, fmt.Errorf("get pod: %w", err)
	}
	for _, p := range pols.Items {
		sel, err := metav1.LabelSelectorAsSelector(&p.Spec.PodSelector)
		if err != nil || sel.Matches(labels.Set(pod.Labels)) {
			return true, nil // an unreadable selector: OVS decides
		}
	}
	return false, nil
}

// endpoints is what the FastPathReconciler needs of the datapath (*datapath.Datapath).
type endpoints interface {
	SetEndpointFastPath(ctx context.Context, vpn uint32, ip netip.Addr, on bool) error
}

// allocations is what it needs of the address store (*ipam.Store).
type allocations interface {
	List(ctx context.Context) ([]ipam.Allocation, error)
}

// networkIDs names the VPN ids (*vpn.NodeNetworks).
type networkIDs interface {
	ByName(name string) (attach.Network, bool)
}

// FastPathReconciler is part of the node role: when a policy or a pod of a namespace
// changes, it switches the fast path of that namespace's pods on this node to what
// Isolation says. The attach.Manager asks the same Isolation at ADD, so a new pod is
// never on the fast path while a policy selects it.
type FastPathReconciler struct {
	Isolation *Isolation
	Datapath  endpoints
	Store     allocations
	Networks  networkIDs
	Log       logr.Logger
}

// SetupWithManager registers the reconciler; requests are namespaces.
func (r *FastPathReconciler) SetupWithManager(mgr ctrl.Manager) error {
	toNamespace := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: client.ObjectKey{Name: o.GetNamespace()}}}
	})
	no := false // every node runs it, leader or not
	return ctrl.NewControllerManagedBy(mgr).
		Named("networkpolicy-fastpath").
		WithOptions(controller.Options{NeedLeaderElection: &no}).
		Watches(&networkingv1.NetworkPolicy{}, toNamespace).
		Watches(&corev1.Pod{}, toNamespace).
		Complete(r)
}

// Reconcile sets the fast path of every pod of namespace req.Name held on this node.
func (r *FastPathReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	allocs, err := r.Store.List(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	var errs []error
	for _, a := range allocs {
		if a.Owner.PodNamespace != req.Name || strings.HasPrefix(a.Owner.ContainerID, attach.NodeOwnerPrefix) {
			continue
		}
		n, ok := r.Networks.ByName(a.Pool)
		if !ok {
			continue
		}
		isolated, err := r.Isolation.isolated(ctx, a.Owner.PodNamespace, a.Owner.PodName)
		if err != nil {
			errs = append(errs, err)
			isolated = true
		}
		err = r.Datapath.SetEndpointFastPath(ctx, n.ID, a.Addr.Addr(), !isolated)
		switch {
		case errors.Is(err, ebpf.ErrKeyNotExist):
			// Not attached (yet): ADD asks Isolation itself.
		case err != nil:
			errs = append(errs, err)
		default:
			r.Log.V(1).Info("fast path", "pod", a.Owner.PodNamespace+"/"+a.Owner.PodName, "on", !isolated)
		}
	}
	if len(errs) > 0 {
		return ctrl.Result{RequeueAfter: time.Second}, errors.Join(errs...)
	}
	return ctrl.Result{}, nil
}
