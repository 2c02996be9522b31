package vpn

import (
	"context"
	"fmt"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"

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
}

// SetupWithManager registers the reconciler to run on every node.
func (r *FastPathReconciler) SetupWithManager(mgr ctrl.Manager) error {
	no := false
	return ctrl.NewControllerManagedBy(mgr).
		Named("vpn-fastpath").
		For(&v1alpha1.VirtualPrivateNetwork{}).
		WithOptions(controller.Options{NeedLeaderElection: &no}).
		Complete(r)
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
	on := v.Spec.FastPath == nil || *v.Spec.FastPath
	if err := r.Datapath.SetVPNFastPath(ctx, v.Status.VPNID, on); err != nil {
		return ctrl.Result{}, fmt.Errorf("fast path of vpn %s: %w", v.Name, err)
	}
	return ctrl.Result{}, nil
}
