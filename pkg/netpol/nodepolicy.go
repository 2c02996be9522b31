package netpol

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	cnpv1 "sigs.k8s.io/network-policy-api/apis/v1beta1"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
	"github.com/sdncni/sdncni/pkg/attach"
	"github.com/sdncni/sdncni/pkg/datapath"
	"github.com/sdncni/sdncni/pkg/ipam"
	"github.com/sdncni/sdncni/pkg/policy"
	"github.com/sdncni/sdncni/pkg/vpn"
)

// endpoints is what the FastPathReconciler needs of the datapath (*datapath.Datapath).
type endpoints interface {
	SetEndpointFastPath(ctx context.Context, vpn uint32, ip netip.Addr, on bool) error
	SetPolicy(ctx context.Context, p datapath.VPNPolicy) (datapath.PolicyReport, error)
}

// allocations is what it needs of the address store (*ipam.Store).
type allocations interface {
	List(ctx context.Context) ([]ipam.Allocation, error)
}

// networkIDs names the VPN ids (*vpn.NodeNetworks).
type networkIDs interface {
	ByName(name string) (attach.Network, bool)
}

// FastPathReconciler is part of the node role (every node, not leader-elected): it
// writes, per VPN, what NetworkPolicy and ClusterNetworkPolicy allow between the pods of
// this node into the fast path — each pod's governed flags and, for every ordered pair a
// policy governs,
// the ports it allows — and then switches those pods on the fast path. The fast path
// delivers a governed pair's packet only when that entry allows it or it replies to a
// connection admitted there; everything else goes to OVS, where OVN's ACLs decide.
// A pod whose policy it cannot compute stays off (fail closed). All events map to one
// request: each run recomputes every VPN of the node, so bursts coalesce.
type FastPathReconciler struct {
	Isolation *Isolation
	Datapath  endpoints
	Store     allocations
	Networks  networkIDs
	// Resync re-runs this often (default 10 s): a pod's ADD brings no API event.
	Resync time.Duration
	Log    logr.Logger

	mu   sync.Mutex
	last map[string]datapath.PolicyEndpoint // pod key → isolation last written
}

// nodeRequest is the one request all events map to.
var nodeRequest = reconcile.Request{NamespacedName: client.ObjectKey{Name: "node"}}

// SetupWithManager registers the reconciler.
func (r *FastPathReconciler) SetupWithManager(mgr ctrl.Manager) error {
	all := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{nodeRequest}
	})
	no := false // every node runs it, leader or not
	b := ctrl.NewControllerManagedBy(mgr).
		Named("networkpolicy-fastpath").
		WithOptions(controller.Options{NeedLeaderElection: &no}).
		Watches(&networkingv1.NetworkPolicy{}, all).
		Watches(&corev1.Pod{}, all).
		Watches(&corev1.Namespace{}, all).
		Watches(&v1alpha1.VirtualPrivateNetwork{}, all)
	if r.Isolation.ClusterPolicies {
		b = b.Watches(&cnpv1.ClusterNetworkPolicy{}, all)
	}
	return b.Complete(r)
}

// localPod is a pod of this node as its address allocation names it.
type localPod struct {
	key string
	ip  netip.Addr
}

// Reconcile writes the policy state of every VPN with pods on this node.
func (r *FastPathReconciler) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	resync := r.Resync
	if resync == 0 {
		resync = 10 * time.Second
	}
	allocs, err := r.Store.List(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	byVPN := map[string][]localPod{}
	for _, a := range allocs {
		if strings.HasPrefix(a.Owner.ContainerID, attach.NodeOwnerPrefix) || a.Owner.PodName == "" {
			continue
		}
		byVPN[a.Pool] = append(byVPN[a.Pool], localPod{key: a.Owner.PodNamespace + "/" + a.Owner.PodName, ip: a.Addr.Addr()})
	}
	r.forget(byVPN)
	var errs []error
	retry := false
	for name, pods := range byVPN {
		n, ok := r.Networks.ByName(name)
		if !ok {
			continue
		}
		p, err := r.compute(ctx, name, n.ID, pods)
		if err != nil {
			// Fail closed: the VPN's pods leave the fast path.
			errs = append(errs, fmt.Errorf("vpn %s: %w", name, err))
			p = datapath.VPNPolicy{VPN: n.ID}
			for _, lp := range pods {
				p.Off = append(p.Off, lp.ip)
			}
		}
		rep, err := r.Datapath.SetPolicy(ctx, p)
		if err != nil {
			errs = append(errs, err)
		}
		if len(rep.Missing) > 0 {
			retry = true // allocated, not attached yet
		}
		if len(rep.Changed) > 0 {
			r.Log.Info("policy verdicts of fast-path pods changed; their connections were judged again",
				"vpn", name, "pods", len(rep.Changed), "flushed", rep.Flushed, "udpBlocked", rep.Blocked)
		}
		r.logChanges(p, pods, rep.Missing)
	}
	if len(errs) > 0 {
		return ctrl.Result{RequeueAfter: time.Second}, errors.Join(errs...)
	}
	if retry {
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	return ctrl.Result{RequeueAfter: resync}, nil
}

// compute is VPN name's policy state for its pods on this node. A pod the cache does
// not know (yet, or at all: a runtime without Pod objects) stays off when a policy of
// its namespace could select it, and is on, isolated in neither direction, otherwise. A Snapshot of the node's own pods is enough: what policy
// allows between two pods depends only on them, their namespaces and the policies
// (policy.PairPorts).
func (r *FastPathReconciler) compute(ctx context.Context, name string, id uint32, pods []localPod) (datapath.VPNPolicy, error) {
	out := datapath.VPNPolicy{VPN: id}
	c := r.Isolation.Cache
	_, claims, err := vpn.ReadClaims(ctx, c)
	if err != nil {
		return out, err
	}
	var nss corev1.NamespaceList
	if err := c.List(ctx, &nss); err != nil {
		return out, fmt.Errorf("list namespaces: %w", err)
	}
	var npl networkingv1.NetworkPolicyList
	if err := c.List(ctx, &npl); err != nil {
		return out, fmt.Errorf("list networkpolicies: %w", err)
	}
	snap := &policy.Snapshot{VPN: name}
	for _, ns := range nss.Items {
		snap.Namespaces = append(snap.Namespaces, policy.Namespace{Name: ns.Name, Labels: ns.Labels})
	}
	for _, p := range npl.Items {
		if owner, err := claims.Owner(p.Namespace); err == nil && owner == name {
			snap.Policies = append(snap.Policies, p)
		}
	}
	if r.Isolation.ClusterPolicies {
		var l cnpv1.ClusterNetworkPolicyList
		if err := c.List(ctx, &l); err != nil {
			return out, fmt.Errorf("list clusternetworkpolicies: %w", err)
		}
		snap.ClusterPolicies = l.Items
	}
	// Namespaces with a policy: only there can a pod be a NetworkPolicy's subject. A
	// ClusterNetworkPolicy may select a pod of any namespace.
	governed := map[string]bool{}
	for _, p := range snap.Policies {
		governed[p.Namespace] = true
	}
	for _, lp := range pods {
		ns, podName, _ := strings.Cut(lp.key, "/")
		var pod corev1.Pod
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: podName}, &pod); err != nil {
			if !apierrors.IsNotFound(err) {
				return out, fmt.Errorf("get pod %s: %w", lp.key, err)
			}
			if !governed[ns] && len(snap.ClusterPolicies) == 0 {
				// No policy can select it, so it is isolated in neither direction. It is
				// nobody's peer here either (no labels): a pair it is in that another
				// pod's isolation governs gets no entry and goes to OVS.
				out.Endpoints = append(out.Endpoints, datapath.PolicyEndpoint{IP: lp.ip})
				continue
			}
			out.Off = append(out.Off, lp.ip)
			continue
		}
		pp := policy.PodsFrom([]corev1.Pod{*withIP(&pod, lp.ip)})
		if len(pp) == 0 {
			out.Off = append(out.Off, lp.ip)
			continue
		}
		snap.Pods = append(snap.Pods, pp...)
	}
	ps := policy.Resolve(snap)
	iso := make(map[netip.Addr]datapath.PolicyEndpoint, len(snap.Pods))
	for _, p := range snap.Pods {
		e := datapath.PolicyEndpoint{IP: p.IP, Ingress: ps.Governed(p.Key(), policy.Ingress), Egress: ps.Governed(p.Key(), policy.Egress)}
		iso[p.IP] = e
		out.Endpoints = append(out.Endpoints, e)
	}
	for _, s := range snap.Pods {
		for _, d := range snap.Pods {
			if s.IP == d.IP || !iso[s.IP].Egress && !iso[d.IP].Ingress {
				continue
			}
			v := ps.PairPorts(s.IP, d.IP)
			if v.None() || !v.All && len(v.Ranges) > datapath.MaxPairRanges {
				continue // no entry: the pair's governed traffic goes to OVS
			}
			out.Pairs = append(out.Pairs, pairOf(s.IP, d.IP, v))
		}
	}
	return out, nil
}

func pairOf(src, dst netip.Addr, v policy.PairVerdict) datapath.PolicyPair {
	pp := datapath.PolicyPair{Src: src, Dst: dst, All: v.All}
	for _, r := range v.Ranges {
		lo, hi := max(r.Lo, 0), min(r.Hi, 65535)
		pp.Ranges = append(pp.Ranges, datapath.PortRange{Protocol: strings.ToLower(string(r.Protocol)), Lo: uint16(lo), Hi: uint16(hi)})
	}
	return pp
}

// logChanges logs (-v 1) each pod whose fast-path policy state changed: on the fast
// path with its isolation, or off.
func (r *FastPathReconciler) logChanges(p datapath.VPNPolicy, pods []localPod, missing []netip.Addr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last == nil {
		r.last = map[string]datapath.PolicyEndpoint{}
	}
	byIP := map[netip.Addr]string{}
	for _, lp := range pods {
		byIP[lp.ip] = lp.key
	}
	skip := map[netip.Addr]bool{}
	for _, ip := range missing {
		skip[ip] = true
	}
	var keys []string
	now := map[string]datapath.PolicyEndpoint{}
	for _, e := range p.Endpoints {
		if !skip[e.IP] {
			now[byIP[e.IP]] = e
		}
	}
	for _, ip := range p.Off {
		now[byIP[ip]] = datapath.PolicyEndpoint{} // IP unset: off
	}
	for k := range now {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		e := now[k]
		if old, ok := r.last[k]; ok && old == e {
			continue
		}
		r.last[k] = e
		r.Log.V(1).Info("fast path", "pod", k, "on", e.IP.IsValid(), "ingressIsolated", e.Ingress, "egressIsolated", e.Egress)
	}
}

// forget drops the logged state of pods no longer on this node.
func (r *FastPathReconciler) forget(byVPN map[string][]localPod) {
	r.mu.Lock()
	defer r.mu.Unlock()
	here := map[string]bool{}
	for _, pods := range byVPN {
		for _, lp := range pods {
			here[lp.key] = true
		}
	}
	for k := range r.last {
		if !here[k] {
			delete(r.last, k)
		}
	}
}
