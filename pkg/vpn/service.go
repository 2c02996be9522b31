package vpn

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
	"github.com/sdncni/sdncni/pkg/ovs"
)

// loadBalancers is what ServiceReconciler needs of OVN NB (*ovs.Northbound).
type loadBalancers interface {
	EnsureLoadBalancer(ctx context.Context, lb ovs.LoadBalancer) error
	DeleteLoadBalancer(ctx context.Context, name string) error
	ListOwnedLoadBalancers(ctx context.Context) ([]ovs.LoadBalancer, error)
	SetEndpointRoutes(ctx context.Context, endpoints map[string][]netip.Addr) error
}

var _ loadBalancers = (*ovs.Northbound)(nil)

// ServiceReconciler is part of the cluster role (leader-elected): it realises each
// ClusterIP Service as one OVN load balancer per protocol on its namespace's VPN only
// (that VPN's switch and router), with the ready endpoints of its EndpointSlices as
// backends. A Service whose namespace is in conflict, or whose VPN is not realised,
// has no load balancer. Load balancers whose Service is gone are removed on every
// reconcile, so no finalizer is needed.
type ServiceReconciler struct {
	Client client.Client
	NB     loadBalancers
	// Resync re-runs each Service this often (garbage collection after a restart).
	Resync time.Duration
	Log    logr.Logger
}

// SetupWithManager registers the reconciler: a Service is reconciled when it, one of
// its EndpointSlices, its Namespace or any VPN changes (ownership may move).
func (r *ServiceReconciler) SetupWithManager(mgr ctrl.Manager) error {
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
	all := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, _ client.Object) []reconcile.Request {
		return services(ctx)
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("service").
		For(&corev1.Service{}).
		Watches(&discoveryv1.EndpointSlice{}, slice).
		Watches(&corev1.Namespace{}, ns).
		Watches(&v1alpha1.VirtualPrivateNetwork{}, all).
		Complete(r)
}

// Reconcile realises one Service and removes load balancers of Services that are gone.
func (r *ServiceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	key := req.Namespace + "/" + req.Name
	want, err := r.want(ctx, req)
	if err != nil {
		return ctrl.Result{}, err
	}
	for _, lb := range want {
		if err := r.NB.EnsureLoadBalancer(ctx, lb); err != nil {
			return ctrl.Result{}, fmt.Errorf("service %s: %w", key, err)
		}
	}
	owned, err := r.NB.ListOwnedLoadBalancers(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	for _, lb := range owned {
		stale := lb.Service == key && !slices.ContainsFunc(want, func(w ovs.LoadBalancer) bool { return w.Name == lb.Name })
		if !stale && lb.Service != key {
			stale, err = r.serviceGone(ctx, lb.Service)
			if err != nil {
				return ctrl.Result{}, err
			}
		}
		if stale {
			if err := r.NB.DeleteLoadBalancer(ctx, lb.Name); err != nil {
				return ctrl.Result{}, fmt.Errorf("service %s: %w", lb.Service, err)
			}
			r.Log.V(1).Info("load balancer removed", "name", lb.Name, "service", lb.Service)
		}
	}
	if err := r.endpointRoutes(ctx); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: r.Resync}, nil
}

// endpointRoutes gives every backend that is a pod of its load balancer's VPN (an
// address in the VPN's CIDR) a /32 route on the VPN's router (see
// ovs.SetEndpointRoutes), and removes the routes of backends that are gone. Backends
// outside the VPN (host-network endpoints such as the API server's) need none: the
// router sends them to the node and their replies come back through OVS.
func (r *ServiceReconciler) endpointRoutes(ctx context.Context) error {
	owned, err := r.NB.ListOwnedLoadBalancers(ctx)
	if err != nil {
		return err
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
	for _, lb := range owned {
		for _, backends := range lb.VIPs {
			for _, b := range strings.Split(backends, ",") {
				ap, err := netip.ParseAddrPort(b)
				if err == nil && cidrs[lb.Network].Contains(ap.Addr()) && !slices.Contains(eps[lb.Network], ap.Addr()) {
					eps[lb.Network] = append(eps[lb.Network], ap.Addr())
				}
			}
		}
	}
	return r.NB.SetEndpointRoutes(ctx, eps)
}

// want returns the load balancers Service req should have: none when it is gone,
// headless, not a ClusterIP kind, or its namespace has no usable VPN.
func (r *ServiceReconciler) want(ctx context.Context, req ctrl.Request) ([]ovs.LoadBalancer, error) {
	var svc corev1.Service
	if err := r.Client.Get(ctx, req.NamespacedName, &svc); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	if !svc.DeletionTimestamp.IsZero() || svc.Spec.Type == corev1.ServiceTypeExternalName ||
		svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == corev1.ClusterIPNone {
		return nil, nil
	}
	vpns, claims, err := ReadClaims(ctx, r.Client)
	if err != nil {
		return nil, err
	}
	owner, err := claims.Owner(svc.Namespace)
	if err != nil {
		return nil, nil //nolint:nilerr // a namespace in conflict has no Service load balancers
	}
	i := slices.IndexFunc(vpns, func(v v1alpha1.VirtualPrivateNetwork) bool { return v.Name == owner })
	if i < 0 || vpns[i].Status.OVN == nil || !vpns[i].DeletionTimestamp.IsZero() {
		return nil, nil // not realised (yet): the VPN's change re-runs this
	}
	var eps discoveryv1.EndpointSliceList
	if err := r.Client.List(ctx, &eps, client.InNamespace(svc.Namespace),
		client.MatchingLabels{discoveryv1.LabelServiceName: svc.Name}); err != nil {
		return nil, fmt.Errorf("list endpointslices: %w", err)
	}
	var out []ovs.LoadBalancer
	for proto, vips := range ServiceVIPs(&svc, eps.Items) {
		out = append(out, ovs.LoadBalancer{Name: ovs.LoadBalancerName(svc.Namespace, svc.Name, proto), Network: owner,
			Service: svc.Namespace + "/" + svc.Name, Protocol: proto, VIPs: vips})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out, nil
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

// ServicePort is one ClusterIP, port and protocol ("tcp" or "udp") of a Service with its
// ready endpoints (address and target port).
type ServicePort struct {
	Protocol string
	VIP      netip.AddrPort
	Backends []netip.AddrPort
}

// ServicePorts lists the TCP and UDP ports (SCTP is skipped) of each IPv4 ClusterIP of a
// Service with the ready IPv4 endpoints (conditions.ready unset counts as ready) of its
// EndpointSlices, matched to the Service port by name and protocol. A port with no ready
// endpoint has no backends.
func ServicePorts(svc *corev1.Service, eps []discoveryv1.EndpointSlice) []ServicePort {
	var ips []netip.Addr
	for _, s := range append([]string{svc.Spec.ClusterIP}, svc.Spec.ClusterIPs...) {
		if a, err := netip.ParseAddr(s); err == nil && a.Is4() && !slices.Contains(ips, a) {
			ips = append(ips, a)
		}
	}
	var out []ServicePort
	for _, p := range svc.Spec.Ports {
		proto := strings.ToLower(string(protocolOr(p.Protocol)))
		if proto != "tcp" && proto != "udp" {
			continue
		}
		var backends []netip.AddrPort
		for _, s := range eps {
			if s.AddressType != discoveryv1.AddressTypeIPv4 {
				continue
			}
			var target int32
			for _, sp := range s.Ports {
				spProto := corev1.ProtocolTCP
				if sp.Protocol != nil {
					spProto = *sp.Protocol
				}
				if sp.Port != nil && ptrString(sp.Name) == p.Name && spProto == protocolOr(p.Protocol) {
					target = *sp.Port
				}
			}
			if target <= 0 || target > 65535 {
				continue
			}
			for _, e := range s.Endpoints {
				if e.Conditions.Ready != nil && !*e.Conditions.Ready {
					continue
				}
				for _, a := range e.Addresses {
					if ip, err := netip.ParseAddr(a); err == nil && ip.Is4() {
						b := netip.AddrPortFrom(ip, uint16(target))
						if !slices.Contains(backends, b) {
							backends = append(backends, b)
						}
					}
				}
			}
		}
		for _, ip := range ips {
			out = append(out, ServicePort{Protocol: proto, VIP: netip.AddrPortFrom(ip, uint16(p.Port)), Backends: backends})
		}
	}
	return out
}

// ServiceVIPs maps each protocol of a Service to OVN load balancer VIPs (ServicePorts as
// strings): "clusterIP:port" → "ep:targetPort,..." with the backends in string order; a
// port with no ready endpoint maps to "".
func ServiceVIPs(svc *corev1.Service, eps []discoveryv1.EndpointSlice) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, p := range ServicePorts(svc, eps) {
		backends := make([]string, 0, len(p.Backends))
		for _, b := range p.Backends {
			backends = append(backends, b.String())
		}
		sort.Strings(backends)
		if out[p.Protocol] == nil {
			out[p.Protocol] = map[string]string{}
		}
		out[p.Protocol][p.VIP.String()] = strings.Join(backends, ",")
	}
	return out
}

func ptrString(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func protocolOr(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}
