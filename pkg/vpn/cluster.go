package vpn

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
	"github.com/sdncni/sdncni/pkg/attach"
	"github.com/sdncni/sdncni/pkg/ovs"
)

// northbound is what the cluster role needs of OVN NB (*ovs.Northbound).
type northbound interface {
	EnsureNetwork(ctx context.Context, n ovs.Network) error
	DeleteNetwork(ctx context.Context, name string) error
	ListOwnedLogicalPorts(ctx context.Context) ([]ovs.LogicalPortInfo, error)
}

var _ northbound = (*ovs.Northbound)(nil)

// ClusterReconciler is the cluster role. Run it under leader election. It assigns VPN
// ids through VPNID claims (IDs), so even two of it at once cannot give one id twice.
type ClusterReconciler struct {
	Client client.Client
	// API reads uncached (VPN id claims must not be judged from a lagging cache);
	// mgr.GetAPIReader(). Nil: Client.
	API      client.Reader
	NB       northbound
	Recorder record.EventRecorder
	// DefaultMTU is reported in status when a VPN leaves spec.mtu out.
	DefaultMTU int
	// Resync re-counts pods this often (pods are not watched: their attachments live in
	// OVN, counted from the NB cache).
	Resync time.Duration
	// BlocksPerVPN is the nodes' bound on one VPN's blocks (Limits.BlocksPerVPN), for
	// the BlockLimitReached condition; 0: no bound, no condition.
	BlocksPerVPN int
	Log          logr.Logger
}

// SetupWithManager registers the reconciler: every VPN is reconciled when any VPN or
// Namespace changes, since conflicts and ownership depend on all of them.
func (r *ClusterReconciler) SetupWithManager(mgr ctrl.Manager) error {
	all := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, _ client.Object) []reconcile.Request {
		var l v1alpha1.VirtualPrivateNetworkList
		if err := r.Client.List(ctx, &l); err != nil {
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(l.Items))
		for _, v := range l.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKey{Name: v.Name}})
		}
		return reqs
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("vpn").
		For(&v1alpha1.VirtualPrivateNetwork{}).
		Watches(&v1alpha1.VirtualPrivateNetwork{}, all).
		Watches(&corev1.Namespace{}, all).
		Complete(r)
}

// Reconcile realises one VPN.
func (r *ClusterReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var v v1alpha1.VirtualPrivateNetwork
	if err := r.Client.Get(ctx, req.NamespacedName, &v); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !v.DeletionTimestamp.IsZero() {
		return r.finalize(ctx, &v)
	}
	if controllerutil.AddFinalizer(&v, v1alpha1.Finalizer) {
		if err := r.Client.Update(ctx, &v); err != nil {
			return ctrl.Result{}, fmt.Errorf("add finalizer: %w", err)
		}
	}
	before := v.Status.DeepCopy()
	res, err := r.realise(ctx, &v)
	if err != nil {
		return res, err
	}
	if !statusEqual(before, &v.Status) {
		if err := r.Client.Status().Update(ctx, &v); err != nil {
			return ctrl.Result{}, fmt.Errorf("update status: %w", err)
		}
	}
	return res, nil
}

func (r *ClusterReconciler) realise(ctx context.Context, v *v1alpha1.VirtualPrivateNetwork) (ctrl.Result, error) {
	st := &v.Status
	st.ObservedGeneration = v.Generation
	st.MTU = int32(r.DefaultMTU)
	if v.Spec.MTU != nil {
		st.MTU = *v.Spec.MTU
	}
	cidr, err := netip.ParsePrefix(v.Spec.CIDR)
	if err != nil || !cidr.Addr().Is4() {
		r.setCondition(v, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonUnsupportedFamily,
			fmt.Sprintf("cidr %s: only IPv4 is implemented", v.Spec.CIDR))
		return ctrl.Result{}, nil
	}
	id, corrected, err := r.ids().Ensure(ctx, v)
	if err != nil {
		r.setCondition(v, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonNoID, err.Error())
		return ctrl.Result{}, fmt.Errorf("vpn id of %s: %w", v.Name, err)
	}
	if corrected {
		msg := fmt.Sprintf("status.vpnID %d is not this VPN's (VPNID %s names another): restored to %d", st.VPNID,
			v1alpha1.IDName(st.VPNID), id)
		r.Log.Error(nil, "vpn id in status is not the vpn's own; corrected", "vpn", v.Name, "status", st.VPNID, "id", id)
		if r.Recorder != nil {
			r.Recorder.Event(v, corev1.EventTypeWarning, v1alpha1.ReasonIDCorrected, msg)
		}
	}
	st.VPNID = id

	gw := Gateway(cidr)
	err = r.NB.EnsureNetwork(ctx, ovs.Network{Name: v.Name, Subnets: []netip.Prefix{cidr.Masked()},
		GatewayMAC: attach.MACFor(gw), Gateways: []netip.Prefix{netip.PrefixFrom(gw, cidr.Bits())},
		ExternalIDs: map[string]string{"sdncni.io/vpn": v.Name}})
	if err != nil {
		r.setCondition(v, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonOVNError, err.Error())
		return ctrl.Result{RequeueAfter: 5 * time.Second}, nil
	}
	st.OVN = &v1alpha1.OVNStatus{Router: ovs.RouterName(v.Name), Switch: ovs.SwitchName(v.Name)}

	claims, err := r.claims(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	if c := claims.ConflictsOf(v.Name); len(c) > 0 {
		r.setCondition(v, v1alpha1.ConditionConflict, metav1.ConditionTrue, v1alpha1.ReasonNamespaceConflict,
			"namespaces also claimed by another VPN (new pods there wait until resolved): "+strings.Join(c, ", "))
	} else {
		r.setCondition(v, v1alpha1.ConditionConflict, metav1.ConditionFalse, v1alpha1.ReasonNoConflict, "")
	}
	st.Namespaces = int32(claims.Owned(v.Name))

	lsps, err := r.NB.ListOwnedLogicalPorts(ctx)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("list logical ports: %w", err)
	}
	st.Pods, st.PodsOnOldVPN = 0, 0
	for _, p := range lsps {
		if p.Owner.Role != "" {
			continue // a node's management port, not a pod
		}
		owner, _ := claims.Owner(p.Owner.PodNamespace)
		switch {
		case p.Owner.Network == v.Name:
			st.Pods++
		case owner == v.Name:
			st.PodsOnOldVPN++
		}
	}
	if err := r.blockLimit(ctx, v); err != nil {
		return ctrl.Result{}, err
	}
	r.setCondition(v, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonRealized,
		fmt.Sprintf("router %s, switch %s", st.OVN.Router, st.OVN.Switch))
	return ctrl.Result{RequeueAfter: r.Resync}, nil
}

// finalize removes a deleted VPN's OVN rows and blocks once no pod is attached to it.
// Pods keep working until they are deleted; new pods of its namespaces wait (or go to
// the VPN that now owns the namespace).
func (r *ClusterReconciler) finalize(ctx context.Context, v *v1alpha1.VirtualPrivateNetwork) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(v, v1alpha1.Finalizer) {
		return ctrl.Result{}, nil
	}
	lsps, err := r.NB.ListOwnedLogicalPorts(ctx)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("list logical ports: %w", err)
	}
	attached := 0
	for _, p := range lsps {
		if p.Owner.Network == v.Name && p.Owner.Role == "" {
			attached++
		}
	}
	if attached > 0 {
		msg := fmt.Sprintf("deletion waits for %d attached pods to be deleted", attached)
		if r.setCondition(v, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonDeleting, msg) {
			v.Status.Pods = int32(attached)
			if err := r.Client.Status().Update(ctx, v); err != nil {
				return ctrl.Result{}, fmt.Errorf("update status: %w", err)
			}
		}
		return ctrl.Result{RequeueAfter: 5 * time.Second}, nil
	}
	if err := r.NB.DeleteNetwork(ctx, v.Name); err != nil {
		return ctrl.Result{}, fmt.Errorf("delete ovn network %s: %w", v.Name, err)
	}
	if err := r.Client.DeleteAllOf(ctx, &v1alpha1.VPNBlock{}, client.MatchingLabels{v1alpha1.LabelVPN: v.Name}); err != nil {
		return ctrl.Result{}, fmt.Errorf("delete blocks of %s: %w", v.Name, err)
	}
	if err := r.ids().Release(ctx, v.Name); err != nil {
		return ctrl.Result{}, err
	}
	controllerutil.RemoveFinalizer(v, v1alpha1.Finalizer)
	if err := r.Client.Update(ctx, v); err != nil {
		return ctrl.Result{}, fmt.Errorf("remove finalizer: %w", err)
	}
	r.Recorder.Event(v, corev1.EventTypeNormal, "Deleted", "OVN router, switch and address blocks removed")
	return ctrl.Result{}, nil
}

func (r *ClusterReconciler) ids() *IDs {
	api := r.API
	if api == nil {
		api = r.Client
	}
	return &IDs{Cache: r.Client, API: apiClient{Reader: api, Client: r.Client}}
}

// apiClient reads through Reader (uncached) and writes through Client.
type apiClient struct {
	client.Reader
	client.Client
}

func (c apiClient) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	return c.Reader.Get(ctx, key, obj, opts...)
}

func (c apiClient) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	return c.Reader.List(ctx, list, opts...)
}

func (r *ClusterReconciler) claims(ctx context.Context) (Claims, error) {
	_, c, err := ReadClaims(ctx, r.Client)
	return c, err
}

// setCondition sets a condition and records an event when it changes; it reports
// whether it changed.
func (r *ClusterReconciler) setCondition(v *v1alpha1.VirtualPrivateNetwork, typ string, s metav1.ConditionStatus, reason, msg string) bool {
	changed := meta.SetStatusCondition(&v.Status.Conditions, metav1.Condition{Type: typ, Status: s, Reason: reason,
		Message: msg, ObservedGeneration: v.Generation})
	if changed && r.Recorder != nil {
		kind := corev1.EventTypeNormal
		if (typ == v1alpha1.ConditionReady && s == metav1.ConditionFalse) || (typ != v1alpha1.ConditionReady && s == metav1.ConditionTrue) {
			kind = corev1.EventTypeWarning
		}
		r.Recorder.Event(v, kind, reason, fmt.Sprintf("%s=%s: %s", typ, s, msg))
	}
	return changed
}

// blockLimit sets BlockLimitReached from the VPN's blocks (the cache) against
// BlocksPerVPN. The False message carries no count: it would be a status write per block.
func (r *ClusterReconciler) blockLimit(ctx context.Context, v *v1alpha1.VirtualPrivateNetwork) error {
	if r.BlocksPerVPN <= 0 {
		return nil
	}
	var blocks v1alpha1.VPNBlockList
	if err := r.Client.List(ctx, &blocks, client.MatchingLabels{v1alpha1.LabelVPN: v.Name}); err != nil {
		return fmt.Errorf("list blocks of %s: %w", v.Name, err)
	}
	if n := len(blocks.Items); n >= r.BlocksPerVPN {
		r.setCondition(v, v1alpha1.ConditionBlockLimitReached, metav1.ConditionTrue, v1alpha1.ReasonBlocksAtLimit,
			fmt.Sprintf("blocks: %d, at most %d per VPN: a node that needs one more fails the pod's ADD (CNI code 11)", n, r.BlocksPerVPN))
		return nil
	}
	if meta.FindStatusCondition(v.Status.Conditions, v1alpha1.ConditionBlockLimitReached) == nil {
		return nil // never at the bound: no condition (and no event per VPN)
	}
	r.setCondition(v, v1alpha1.ConditionBlockLimitReached, metav1.ConditionFalse, v1alpha1.ReasonWithinLimits,
		fmt.Sprintf("within bounds: blocks at most %d per VPN", r.BlocksPerVPN))
	return nil
}

func statusEqual(a, b *v1alpha1.VirtualPrivateNetworkStatus) bool {
	return a.ObservedGeneration == b.ObservedGeneration && a.Pods == b.Pods && a.PodsOnOldVPN == b.PodsOnOldVPN &&
		a.Namespaces == b.Namespaces && a.MTU == b.MTU && a.VPNID == b.VPNID &&
		(a.OVN == nil) == (b.OVN == nil) && (a.OVN == nil || *a.OVN == *b.OVN) && conditionsEqual(a.Conditions, b.Conditions)
}

func conditionsEqual(a, b []metav1.Condition) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Type != b[i].Type || a[i].Status != b[i].Status || a[i].Reason != b[i].Reason ||
			a[i].Message != b[i].Message || a[i].ObservedGeneration != b[i].ObservedGeneration {
			return false
		}
	}
	return true
}
