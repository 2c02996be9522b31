package vpn

import (
	"context"
	"fmt"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
)

// vpnSwitch is what FastPathReconciler needs of the datapath.
type vpnSwitch interface {
	SetVPNFastPath(ctx context.Context, vpn uint32, on bool) error
}

// FastPathReconciler runs on every node (no leader election): it applies each VPN's
// spec.fastPath to this node's datapath. Running pods switch paths on their next
// packet; nothing restarts. (Service traffic is kept off the fast path per endpoint,
// by ServiceEndpointReconciler, not per VPN.)
type FastPathReconciler struct {
	Client   client.Client
	Datapath vpnSwitch
	// Recorder and Log report a VPN left unprogrammed because another VPN carries its
	// id (IDHolders); both optional.
	Recorder record.EventRecorder
	Log      logr.Logger
	// Overrides hold some VPNs' fast path off on this node (optional).
	Overrides *FastPathOverrides
}

// SetupWithManager registers the reconciler to run on every node.
func (r *FastPathReconciler) SetupWithManager(mgr ctrl.Manager) error {
	no := false
	b := ctrl.NewControllerManagedBy(mgr).
		Named("vpn-fastpath").
		For(&v1alpha1.VirtualPrivateNetwork{}).
		// Who holds an id can change with its claim alone (IDHolders).
		Watches(&v1alpha1.VPNID{}, handler.EnqueueRequestsFromMapFunc(r.carriers)).
		WithOptions(controller.Options{NeedLeaderElection: &no})
	if r.Overrides != nil {
		b = b.WatchesRawSource(source.Channel(r.Overrides.events, &handler.EnqueueRequestForObject{}))
	}
	return b.Complete(r)
}

// Reconcile implements reconcile.Reconciler.
func (r *FastPathReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var v v1alpha1.VirtualPrivateNetwork
	if err := r.Client.Get(ctx, req.NamespacedName, &v); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if v.Status.VPNID == 0 {
		return ctrl.Result{}, nil
	}
	_, ok, refused, err := readIDHolders(ctx, r.Client)
	if err != nil {
		return ctrl.Result{}, err
	}
	if !ok[v.Name] {
		for _, ref := range refused {
			if ref.VPN != v.Name {
				continue
			}
			r.Log.Error(ref, "not programming the fast path of vpn: another vpn carries its id", "vpn", v.Name,
				"id", ref.ID, "holder", ref.Holder)
			if r.Recorder != nil {
				r.Recorder.Event(&v, corev1.EventTypeWarning, v1alpha1.ReasonIDConflict,
					"node does not program this VPN: "+ref.Error())
			}
		}
		return ctrl.Result{}, nil // a corrected status re-runs this
	}
	on := v.Spec.FastPath == nil || *v.Spec.FastPath
	if why, off := r.Overrides.Off(v.Status.VPNID); off && on {
		on = false
		r.Log.V(1).Info("fast path of vpn held off on this node", "vpn", v.Name, "why", why)
	}
	if err := r.Datapath.SetVPNFastPath(ctx, v.Status.VPNID, on); err != nil {
		return ctrl.Result{}, fmt.Errorf("fast path of vpn %s: %w", v.Name, err)
	}
	return ctrl.Result{}, nil
}

// carriers maps a VPNID to the VPNs that carry its id.
func (r *FastPathReconciler) carriers(ctx context.Context, o client.Object) []reconcile.Request {
	c, ok := o.(*v1alpha1.VPNID)
	if !ok {
		return nil
	}
	var l v1alpha1.VirtualPrivateNetworkList
	if err := r.Client.List(ctx, &l); err != nil {
		return nil
	}
	var reqs []reconcile.Request
	for _, v := range l.Items {
		if v.Status.VPNID == uint32(c.Spec.ID) || v.Name == c.Spec.VPN {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKey{Name: v.Name}})
		}
	}
	return reqs
}
