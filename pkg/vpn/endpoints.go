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
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sdncni/sdncni/pkg/datapath"
)

// serviceEndpointSetter is what ServiceEndpointReconciler needs of the datapath
// (*datapath.Datapath).
type serviceEndpointSetter interface {
	SetServiceEndpoints(ctx context.Context, eps []datapath.ServiceEndpoint) error
	SetFastPath(ctx context.Context, on bool) error
}

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
	Log         logr.Logger
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
					if err != nil || !vi.cidr.Contains(ip) {
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
