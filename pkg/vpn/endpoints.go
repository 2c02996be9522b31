package vpn

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
	"github.com/sdncni/sdncni/pkg/datapath"
)

// serviceEndpointSetter is what ServiceEndpointReconciler needs of the datapath
// (*datapath.Datapath).
type serviceEndpointSetter interface {
	SetServiceEndpoints(ctx context.Context, eps []datapath.ServiceEndpoint) error
}

var _ serviceEndpointSetter = (*datapath.Datapath)(nil)

// ServiceEndpointReconciler runs on every node (no leader election): it tells the
// datapath every Service endpoint — (VPN, pod address, target port, protocol) of each
// ClusterIP Service's EndpointSlices, ready or not (a terminating endpoint still answers
// connections OVN balanced to it) — so that flows from and to those ports pass OVS,
// where OVN un-DNATs the endpoints' replies, while the pods' other traffic keeps the
// fast path (docs/services.md).
type ServiceEndpointReconciler struct {
	Cache    client.Reader // informer cache: Services, EndpointSlices, VPNs, Namespaces
	Datapath serviceEndpointSetter
	Log      logr.Logger
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
	return ctrl.Result{}, r.Datapath.SetServiceEndpoints(ctx, eps)
}

// Endpoints computes the Service endpoints from the cache: for every ClusterIP Service
// whose namespace has a realised VPN, the IPv4 endpoint addresses inside that VPN's
// CIDR (pods; host-network endpoints are not the fast path's business) with each TCP
// and UDP port of the Service's EndpointSlices.
func (r *ServiceEndpointReconciler) Endpoints(ctx context.Context) ([]datapath.ServiceEndpoint, error) {
	var vpns v1alpha1.VirtualPrivateNetworkList
	if err := r.Cache.List(ctx, &vpns); err != nil {
		return nil, fmt.Errorf("list vpns: %w", err)
	}
	var nss corev1.NamespaceList
	if err := r.Cache.List(ctx, &nss); err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	claims, err := ComputeClaims(vpns.Items, nss.Items)
	if err != nil {
		return nil, err
	}
	type vpnInfo struct {
		id   uint32
		cidr netip.Prefix
	}
	info := map[string]vpnInfo{}
	for _, v := range vpns.Items {
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
