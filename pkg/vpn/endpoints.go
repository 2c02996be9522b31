package vpn

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
	"github.com/sdncni/sdncni/pkg/datapath"
)

// serviceEndpointSetter is what ServiceEndpointReconciler needs of the datapath
// (*datapath.Datapath).
type serviceEndpointSetter interface {
	SetServiceEndpoints(ctx context.Context, eps []datapath.ServiceEndpoint) error
	SetFastPath(ctx context.Context, on bool) error
	SetVPNFastPath(ctx context.Context, vpn uint32, on bool) error
}

// DefaultMaxServiceEndpointsPerVPN bounds one VPN's Service endpoints on one node.
const DefaultMaxServiceEndpointsPerVPN = 4096

var _ serviceEndpointSetter = (*datapath.Datapath)(nil)

// ServiceEndpointReconciler runs on every node (no leader election): it tells the
// datapath every Service endpoint — (VPN, pod address, target port, protocol) of each
// ClusterIP Service's EndpointSlices, ready or not (a terminating endpoint still answers
// connections OVN balanced to it) — so that flows from and to those ports pass OVS,
// where OVN un-DNATs the endpoints' replies, while the pods' other traffic keeps the
// fast path (docs/services.md).
//
// The node's global fast-path switch follows the set: while the datapath does not hold
// it — before the first write after a start with an empty map (WaitForSync), or when
// it does not fit (datapath.ErrTooManyServiceEndpoints, which any tenant could cause
// with large EndpointSlices) — every packet goes through OVS, which is slower but keeps
// every Service working; the fast path comes back (if FastPath allows) once it fits.
type ServiceEndpointReconciler struct {
	Cache    client.Reader // informer cache: Services, EndpointSlices, VPNs, Namespaces
	Datapath serviceEndpointSetter
	// FastPath is the node's configured global switch (--fast-path).
	FastPath bool
	// WaitForSync: the fast path is off until the first successful write (set it when
	// the datapath's map was empty at start, e.g. a new node or an upgrade).
	WaitForSync bool
	// Node, when set, keeps only the endpoints of this node's pods: an address inside
	// one of this node's VPNBlocks of the endpoint's VPN. Only those can meet the fast
	// path here (a pod on another node is reached through OVS anyway), so one tenant's
	// EndpointSlices elsewhere cost this node nothing.
	Node string
	// MaxPerVPN bounds one VPN's endpoints on this node (0: the default). A VPN over
	// it has its endpoints left out and its fast path held off here (Overrides), with
	// a Warning event: its Services keep working through OVS, the others' fast path
	// stays.
	MaxPerVPN int
	// Overrides is shared with the FastPathReconciler (needed with MaxPerVPN's hold).
	Overrides *FastPathOverrides
	Recorder  record.EventRecorder
	Log       logr.Logger
}

// SetupWithManager registers the reconciler to run on every node.
func (r *ServiceEndpointReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return completeOnServiceChanges(mgr, "service-endpoints", r)
}

// Reconcile implements reconcile.Reconciler.
func (r *ServiceEndpointReconciler) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	eps, err := r.Endpoints(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	eps, err = r.bound(ctx, eps)
	if err != nil {
		return ctrl.Result{}, err
	}
	err = r.Datapath.SetServiceEndpoints(ctx, eps)
	if errors.Is(err, datapath.ErrTooManyServiceEndpoints) {
		r.Log.Error(err, "fast path off on this node until the Service endpoints fit", "endpoints", len(eps))
		if ferr := r.Datapath.SetFastPath(ctx, false); ferr != nil {
			return ctrl.Result{}, ferr
		}
		return ctrl.Result{RequeueAfter: time.Minute}, nil
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	// Written: the global switch is what it is configured to be.
	return ctrl.Result{}, r.Datapath.SetFastPath(ctx, r.FastPath)
}

// bound leaves out the endpoints of VPNs over MaxPerVPN, holding their fast path off
// first (so no reply of theirs takes the fast path once its endpoint is gone), and
// releases the hold of VPNs back under it (their endpoints are written before the
// FastPathReconciler turns their fast path back on).
func (r *ServiceEndpointReconciler) bound(ctx context.Context, eps []datapath.ServiceEndpoint) ([]datapath.ServiceEndpoint, error) {
	if r.Overrides == nil {
		return eps, nil
	}
	limit := r.MaxPerVPN
	if limit <= 0 {
		limit = DefaultMaxServiceEndpointsPerVPN
	}
	count := map[uint32]int{}
	for _, e := range eps {
		count[e.VPN]++
	}
	names, err := vpnNames(ctx, r.Cache)
	if err != nil {
		return nil, err
	}
	over := map[uint32]bool{}
	for id, n := range count {
		if n <= limit {
			continue
		}
		over[id] = true
		why := fmt.Sprintf("%d Service endpoints on this node, bound %d", n, limit)
		if r.Overrides.Set(id, names[id], why) {
			r.Log.Error(errors.New("service endpoints over bound"), "fast path of vpn held off on this node",
				"vpn", names[id], "endpoints", n, "bound", limit)
			if r.Recorder != nil && names[id] != "" {
				v := &v1alpha1.VirtualPrivateNetwork{}
				v.Name = names[id]
				r.Recorder.Eventf(v, corev1.EventTypeWarning, ReasonServiceEndpointsOverBound,
					"node %s: %s; the VPN's traffic goes through OVS here", r.Node, why)
			}
		}
		if err := r.Datapath.SetVPNFastPath(ctx, id, false); err != nil {
			return nil, err
		}
	}
	for id, name := range names {
		if _, held := r.Overrides.Off(id); held && !over[id] {
			defer r.Overrides.Set(id, name, "") // after this write: see above
		}
	}
	if len(over) == 0 {
		return eps, nil
	}
	kept := eps[:0:0]
	for _, e := range eps {
		if !over[e.VPN] {
			kept = append(kept, e)
		}
	}
	return kept, nil
}

// ReasonServiceEndpointsOverBound is the event reason of a VPN over its bound.
const ReasonServiceEndpointsOverBound = "ServiceEndpointsOverBound"

// vpnNames maps realised VPN ids to names.
func vpnNames(ctx context.Context, c client.Reader) (map[uint32]string, error) {
	var l v1alpha1.VirtualPrivateNetworkList
	if err := c.List(ctx, &l); err != nil {
		return nil, fmt.Errorf("list vpns: %w", err)
	}
	out := map[uint32]string{}
	for _, v := range l.Items {
		if v.Status.VPNID != 0 {
			out[v.Status.VPNID] = v.Name
		}
	}
	return out, nil
}

// Hold applies WaitForSync: call it before the manager starts.
func (r *ServiceEndpointReconciler) Hold(ctx context.Context) error {
	if !r.WaitForSync {
		return nil
	}
	return r.Datapath.SetFastPath(ctx, false)
}

// Endpoints computes the Service endpoints from the cache: for every ClusterIP Service
// whose namespace has a realised VPN, the IPv4 endpoint addresses inside that VPN's
// CIDR (pods; host-network endpoints are not the fast path's business) with each TCP
// and UDP port of the Service's EndpointSlices.
func (r *ServiceEndpointReconciler) Endpoints(ctx context.Context) ([]datapath.ServiceEndpoint, error) {
	vpns, claims, err := ReadClaims(ctx, r.Cache)
	if err != nil {
		return nil, err
	}
	type vpnInfo struct {
		id   uint32
		cidr netip.Prefix
	}
	info := map[string]vpnInfo{}
	for _, v := range vpns {
		if p, err := netip.ParsePrefix(v.Spec.CIDR); err == nil && v.Status.VPNID != 0 {
			info[v.Name] = vpnInfo{id: v.Status.VPNID, cidr: p.Masked()}
		}
	}
	var svcs corev1.ServiceList
	if err := r.Cache.List(ctx, &svcs); err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	balanced := map[string]vpnInfo{} // "ns/name" of Services with a load balancer → VPN
	for _, s := range svcs.Items {
		if s.Spec.Type == corev1.ServiceTypeExternalName || s.Spec.ClusterIP == "" || s.Spec.ClusterIP == corev1.ClusterIPNone {
			continue
		}
		owner, err := claims.Owner(s.Namespace)
		if err != nil {
			continue
		}
		if vi, ok := info[owner]; ok {
			balanced[s.Namespace+"/"+s.Name] = vi
		}
	}
	local, err := r.nodeBlocks(ctx)
	if err != nil {
		return nil, err
	}
	var slices discoveryv1.EndpointSliceList
	if err := r.Cache.List(ctx, &slices); err != nil {
		return nil, fmt.Errorf("list endpointslices: %w", err)
	}
	seen := map[datapath.ServiceEndpoint]bool{}
	var out []datapath.ServiceEndpoint
	for _, sl := range slices.Items {
		vi, ok := balanced[sl.Namespace+"/"+sl.Labels[discoveryv1.LabelServiceName]]
		if !ok || sl.AddressType != discoveryv1.AddressTypeIPv4 {
			continue
		}
		for _, p := range sl.Ports {
			if p.Port == nil || *p.Port <= 0 || *p.Port > 65535 {
				continue
			}
			proto := "tcp"
			if p.Protocol != nil {
				proto = strings.ToLower(string(*p.Protocol))
			}
			if proto != "tcp" && proto != "udp" {
				continue
			}
			for _, e := range sl.Endpoints {
				for _, a := range e.Addresses {
					ip, err := netip.ParseAddr(a)
					if err != nil || !vi.cidr.Contains(ip) || (local != nil && !local.contains(vi.id, ip)) {
						continue
					}
					k := datapath.ServiceEndpoint{VPN: vi.id, IP: ip, Port: uint16(*p.Port), Protocol: proto}
					if !seen[k] {
						seen[k] = true
						out = append(out, k)
					}
				}
			}
		}
	}
	return out, nil
}

// blockSet is this node's VPNBlocks by VPN id.
type blockSet map[uint32][]netip.Prefix

func (b blockSet) contains(vpn uint32, ip netip.Addr) bool {
	for _, p := range b[vpn] {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// nodeBlocks returns this node's blocks by VPN id, or nil without Node (keep all).
func (r *ServiceEndpointReconciler) nodeBlocks(ctx context.Context) (blockSet, error) {
	if r.Node == "" {
		return nil, nil
	}
	ids, err := vpnNames(ctx, r.Cache)
	if err != nil {
		return nil, err
	}
	byName := map[string]uint32{}
	for id, name := range ids {
		byName[name] = id
	}
	var l v1alpha1.VPNBlockList
	if err := r.Cache.List(ctx, &l, client.MatchingLabels{v1alpha1.LabelNode: r.Node}); err != nil {
		return nil, fmt.Errorf("list this node's blocks: %w", err)
	}
	out := blockSet{}
	for _, b := range l.Items {
		id, ok := byName[b.Spec.VPN]
		p, err := netip.ParsePrefix(b.Spec.CIDR)
		if !ok || err != nil || b.Spec.Node != r.Node {
			continue
		}
		out[id] = append(out[id], p.Masked())
	}
	return out, nil
}
