package netpol

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
	cnpv1 "sigs.k8s.io/network-policy-api/apis/v1beta1"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
	"github.com/sdncni/sdncni/pkg/ovs"
	"github.com/sdncni/sdncni/pkg/policy"
	"github.com/sdncni/sdncni/pkg/vpn"
)

// northbound is what the Reconciler needs of OVN NB (*ovs.Northbound).
type northbound interface {
	ListOwnedLogicalPorts(ctx context.Context) ([]ovs.LogicalPortInfo, error)
	SetPolicyRules(ctx context.Context, network string, sets []ovs.PolicyAddressSet, acls []ovs.PolicyACL) error
}

var _ northbound = (*ovs.Northbound)(nil)

// managementRole is the sdncni.io/role of the nodes' management ports (pkg/gateway).
const managementRole = "management-port"

// Reconciler realises the NetworkPolicies and ClusterNetworkPolicies of one VPN per
// request (the request's Name is the VPN). Events of policies, pods and namespaces map
// to their VPN, those of ClusterNetworkPolicies (cluster-scoped) to every VPN, so a burst
// of them costs one reconcile per VPN: the work queue holds each VPN once. It reports a
// ClusterNetworkPolicy it cannot fully realise with a Warning event and its
// ConditionRealised.
type Reconciler struct {
	Client   client.Client
	NB       northbound
	Recorder record.EventRecorder
	// Resync re-runs each VPN this often: nodes' management ports appear in NB without
	// an API event.
	Resync time.Duration
	// Ports, when set, re-runs a VPN whenever a pod's logical port appears in or leaves
	// its network (ovs.Northbound.OnPodPort feeds it): a new pod is governed as soon as
	// its ADD wrote the port, not only once kubelet reports its address.
	Ports <-chan event.GenericEvent
	// ClusterPolicies: the API serves ClusterNetworkPolicy (ClusterPoliciesServed), so
	// they are watched and realised. Without the CRD there are none.
	ClusterPolicies bool
	Log             logr.Logger
}

// ConditionRealised is the condition the cluster role keeps on each
// ClusterNetworkPolicy: True when every rule is realised as written, False (reason
// NotRealised) with the parts that are not, and how they fail.
const ConditionRealised = "sdncni.io/Realised"

// ClusterPoliciesServed reports whether the API serves ClusterNetworkPolicy
// (policy.networking.k8s.io/v1beta1, the CRD in deploy/crds).
func ClusterPoliciesServed(m meta.RESTMapper) bool {
	_, err := m.RESTMapping(schema.GroupKind{Group: cnpv1.GroupName, Kind: "ClusterNetworkPolicy"}, cnpv1.GroupVersion.Version)
	return err == nil
}

// PortEvents returns a channel for Reconciler.Ports and the function to give
// ovs.Northbound.OnPodPort. A full channel drops events: the resync catches up.
func PortEvents() (<-chan event.GenericEvent, func(network string)) {
	ch := make(chan event.GenericEvent, 1024)
	return ch, func(network string) {
		v := &v1alpha1.VirtualPrivateNetwork{}
		v.Name = network
		select {
		case ch <- event.GenericEvent{Object: v}:
		default:
		}
	}
}

// SetupWithManager registers the reconciler.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	byNamespace := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		return r.vpnOf(ctx, o.GetNamespace())
	})
	all := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, _ client.Object) []reconcile.Request {
		return r.allVPNs(ctx)
	})
	b := ctrl.NewControllerManagedBy(mgr).
		Named("networkpolicy").
		For(&v1alpha1.VirtualPrivateNetwork{}).
		Watches(&networkingv1.NetworkPolicy{}, byNamespace).
		Watches(&corev1.Pod{}, byNamespace).
		Watches(&corev1.Namespace{}, all)
	if r.ClusterPolicies {
		b = b.Watches(&cnpv1.ClusterNetworkPolicy{}, all)
	}
	if r.Ports != nil {
		b = b.WatchesRawSource(source.Channel(r.Ports, &handler.EnqueueRequestForObject{}))
	}
	return b.Complete(r)
}

func (r *Reconciler) vpnOf(ctx context.Context, ns string) []reconcile.Request {
	_, claims, err := vpn.ReadClaims(ctx, r.Client)
	if err != nil {
		return nil
	}
	owner, err := claims.Owner(ns)
	if err != nil {
		return r.allVPNs(ctx) // in conflict: its pods stay where they are
	}
	return []reconcile.Request{{NamespacedName: client.ObjectKey{Name: owner}}}
}

func (r *Reconciler) allVPNs(ctx context.Context) []reconcile.Request {
	var l v1alpha1.VirtualPrivateNetworkList
	if err := r.Client.List(ctx, &l); err != nil {
		return nil
	}
	out := make([]reconcile.Request, 0, len(l.Items))
	for _, v := range l.Items {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKey{Name: v.Name}})
	}
	return out
}

// Reconcile writes the VPN's policy rows; a VPN that is gone or not realised has none.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	snap, err := Snapshot(ctx, r.Client, r.NB, req.Name, r.ClusterPolicies)
	if err != nil {
		return ctrl.Result{}, err
	}
	var rules policy.Rules
	var statusErr error
	if snap != nil {
		ps := policy.Resolve(snap)
		rules = ps.Compile()
		r.report(snap, append(ps.Problems, rules.Problems...))
		statusErr = r.setConditions(ctx, snap.ClusterPolicies, ps.Problems)
	}
	sets, acls := toOVS(rules)
	if err := r.NB.SetPolicyRules(ctx, req.Name, sets, acls); err != nil {
		return ctrl.Result{}, err
	}
	if statusErr != nil {
		return ctrl.Result{}, statusErr
	}
	return ctrl.Result{RequeueAfter: r.Resync}, nil
}

// report puts a Warning event on each policy with a part that cannot be realised.
func (r *Reconciler) report(snap *policy.Snapshot, problems []policy.Problem) {
	if r.Recorder == nil {
		return
	}
	for _, p := range problems {
		if p.Cluster {
			for i := range snap.ClusterPolicies {
				if policy.ClusterPolicyKey(snap.ClusterPolicies[i].Name) == p.Policy {
					r.Recorder.Event(&snap.ClusterPolicies[i], corev1.EventTypeWarning, "PolicyNotRealised", p.Message)
				}
			}
			continue
		}
		for i := range snap.Policies {
			if snap.Policies[i].Namespace+"/"+snap.Policies[i].Name == p.Policy {
				r.Recorder.Event(&snap.Policies[i], corev1.EventTypeWarning, "PolicyNotRealised", p.Message)
			}
		}
	}
}

// setConditions keeps ConditionRealised of each ClusterNetworkPolicy. Only problems of
// the policy's spec count (they are the same in every VPN, so runs of different VPNs
// agree); it writes only on a change.
func (r *Reconciler) setConditions(ctx context.Context, cnps []cnpv1.ClusterNetworkPolicy, problems []policy.Problem) error {
	var errs []error
	for i := range cnps {
		p := &cnps[i]
		var msgs []string
		for _, pr := range problems {
			if pr.Cluster && pr.Policy == policy.ClusterPolicyKey(p.Name) {
				msgs = append(msgs, pr.Message)
			}
		}
		c := metav1.Condition{Type: ConditionRealised, Status: metav1.ConditionTrue, Reason: "Realised",
			Message: "every rule is realised in each VPN", ObservedGeneration: p.Generation}
		if len(msgs) > 0 {
			c.Status, c.Reason, c.Message = metav1.ConditionFalse, "NotRealised", strings.Join(msgs, "; ")
		}
		q := p.DeepCopy()
		if !meta.SetStatusCondition(&q.Status.Conditions, c) {
			continue
		}
		if err := r.Client.Status().Update(ctx, q); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("update status of clusternetworkpolicy %s: %w", p.Name, err))
		}
	}
	return errors.Join(errs...)
}

func toOVS(rules policy.Rules) ([]ovs.PolicyAddressSet, []ovs.PolicyACL) {
	sets := make([]ovs.PolicyAddressSet, 0, len(rules.AddressSets))
	for _, s := range rules.AddressSets {
		addrs := make([]string, len(s.Addrs))
		for i, a := range s.Addrs {
			addrs[i] = a.String()
		}
		sets = append(sets, ovs.PolicyAddressSet{Name: s.Name, Addrs: addrs, Policy: s.Policy})
	}
	acls := make([]ovs.PolicyACL, 0, len(rules.ACLs))
	for _, a := range rules.ACLs {
		acls = append(acls, ovs.PolicyACL{Key: a.Key(), Direction: a.Direction, Priority: a.Priority,
			Match: a.Match, Action: a.Action, AfterLB: a.AfterLB, Policy: a.Policy})
	}
	return sets, acls
}

// Snapshot reads VPN name as policy sees it: the pods whose logical ports are on its
// network (with their addresses from NB, labels and named ports from the API), every
// namespace, the policies of the namespaces it owns, with clusterPolicies every
// ClusterNetworkPolicy, and its management ports' addresses. It returns nil for a VPN
// that is gone or not realised in OVN.
func Snapshot(ctx context.Context, c client.Reader, nb northbound, name string, clusterPolicies bool) (*policy.Snapshot, error) {
	snap, err := snapshot(ctx, c, nb, name)
	if snap == nil || err != nil || !clusterPolicies {
		return snap, err
	}
	var l cnpv1.ClusterNetworkPolicyList
	if err := c.List(ctx, &l); err != nil {
		return nil, fmt.Errorf("list clusternetworkpolicies: %w", err)
	}
	snap.ClusterPolicies = l.Items
	return snap, nil
}

func snapshot(ctx context.Context, c client.Reader, nb northbound, name string) (*policy.Snapshot, error) {
	var v v1alpha1.VirtualPrivateNetwork
	if err := c.Get(ctx, client.ObjectKey{Name: name}, &v); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	if v.Status.OVN == nil || !v.DeletionTimestamp.IsZero() {
		return nil, nil
	}
	_, claims, err := vpn.ReadClaims(ctx, c)
	if err != nil {
		return nil, err
	}
	var nss corev1.NamespaceList
	if err := c.List(ctx, &nss); err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	snap := &policy.Snapshot{VPN: name}
	for _, ns := range nss.Items {
		snap.Namespaces = append(snap.Namespaces, policy.Namespace{Name: ns.Name, Labels: ns.Labels})
	}
	var npl networkingv1.NetworkPolicyList
	if err := c.List(ctx, &npl); err != nil {
		return nil, fmt.Errorf("list networkpolicies: %w", err)
	}
	var pols []networkingv1.NetworkPolicy
	for _, p := range npl.Items {
		if owner, err := claims.Owner(p.Namespace); err == nil && owner == name {
			pols = append(pols, p)
		}
	}
	snap.Policies = pols
	ports, err := nb.ListOwnedLogicalPorts(ctx)
	if err != nil {
		return nil, err
	}
	var podl corev1.PodList
	if err := c.List(ctx, &podl); err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	byKey := make(map[string]*corev1.Pod, len(podl.Items))
	for i := range podl.Items {
		byKey[podl.Items[i].Namespace+"/"+podl.Items[i].Name] = &podl.Items[i]
	}
	for _, lp := range ports {
		if lp.Network != name || len(lp.IPs) == 0 {
			continue
		}
		if lp.Owner.Role == managementRole {
			snap.NodeAddrs = append(snap.NodeAddrs, lp.IPs...)
			continue
		}
		if lp.Owner.Role != "" {
			continue
		}
		p := byKey[lp.Owner.PodNamespace+"/"+lp.Owner.PodName]
		if p == nil || p.Spec.HostNetwork {
			continue
		}
		pp := policy.PodsFrom([]corev1.Pod{*withIP(p, lp.IPs[0])})
		snap.Pods = append(snap.Pods, pp...)
	}
	return snap, nil
}

// withIP returns p with status.podIPs set to the address of its logical port, which
// exists from ADD on, before kubelet reports it.
func withIP(p *corev1.Pod, a netip.Addr) *corev1.Pod {
	q := p.DeepCopy()
	q.Status.PodIPs = []corev1.PodIP{{IP: a.String()}}
	q.Status.PodIP = a.String()
	return q
}
