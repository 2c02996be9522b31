package vpn

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
	"github.com/sdncni/sdncni/pkg/ovs"
)

// loadBalancers is what ServiceReconciler needs of OVN NB (*ovs.Northbound).
type loadBalancers interface {
	EnsureLoadBalancer(ctx context.Context, lb ovs.LoadBalancer) error
	DeleteLoadBalancer(ctx context.Context, name string) error
	ListOwnedLoadBalancers(ctx context.Context) ([]ovs.LoadBalancer, error)
	ServiceLoadBalancers(ctx context.Context, service string) ([]ovs.LoadBalancer, error)
	SetEndpointRoutes(ctx context.Context, endpoints map[string][]netip.Addr) error
	UpdateEndpointRoutes(ctx context.Context, network string, want map[netip.Addr]bool) error
}

var _ loadBalancers = (*ovs.Northbound)(nil)

// ServiceReconciler is part of the cluster role (leader-elected): it realises each
// ClusterIP Service as one OVN load balancer per protocol on its namespace's VPN only
// (that VPN's switch and router), with the ready endpoints of its EndpointSlices as
// backends. A Service whose namespace is in conflict, or whose VPN is not realised,
// has no load balancer. Within a VPN's bounds (Limits) only: the Services over
// ServicesPerVPN get none, a Service over BackendsPerService keeps part of its
// backends, and the VPN says so in its ServiceLimitReached condition.
//
// One Service event reads and writes only that Service's rows in NB (its load
// balancers, found through an index, and the endpoint routes of its backends' addresses)
// plus, under a bound, its VPN's status; load balancers of Services deleted while no
// event could tell (a restart) go in Sweep, which SetupWithManager runs every Resync.
type ServiceReconciler struct {
	Client client.Client
	NB     loadBalancers
	// Limits bound each VPN (zero fields: no bound).
	Limits Limits
	// Recorder gets the Warning events of a VPN or Service over a bound; nil: none.
	Recorder record.EventRecorder
	// Resync re-runs each Service, and Sweep, this often.
	Resync time.Duration
	Log    logr.Logger

	mu   sync.Mutex
	refs *backendRefs
	// admitted holds each Service's last admission under ServicesPerVPN; a change of
	// another Service's admission (one deleted, one created in the same second) is
	// queued through kick.
	admitted map[string]bool
	// overNoted holds the Services over ServicesPerVPN whose Warning event is out.
	overNoted map[string]bool
	// cut holds, per VPN, the Services whose backends BackendsPerService cut (key → why).
	cut  map[string]map[string]string
	kick chan event.GenericEvent
}

// Reconcile realises one Service.
func (r *ServiceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.reconcile(ctx, req); err != nil {
		r.refs = nil // NB may hold part of a write: count from NB again next time
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: r.Resync}, nil
}

func (r *ServiceReconciler) reconcile(ctx context.Context, req ctrl.Request) error {
	key := req.Namespace + "/" + req.Name
	if r.refs == nil {
		owned, err := r.NB.ListOwnedLoadBalancers(ctx)
		if err != nil {
			return err
		}
		r.refs = newBackendRefs(owned)
	}
	d, err := r.decide(ctx, req)
	if err != nil {
		return err
	}
	have, err := r.NB.ServiceLoadBalancers(ctx, key)
	if err != nil {
		return err
	}
	// The addresses whose routes this event may change: the Service's backends before
	// and after, and nothing else.
	touched := map[string]map[netip.Addr]bool{}
	note := func(lb ovs.LoadBalancer) {
		if touched[lb.Network] == nil {
			touched[lb.Network] = map[netip.Addr]bool{}
		}
		for _, a := range backendAddrs(lb.VIPs) {
			touched[lb.Network][a] = false
		}
	}
	for _, lb := range have {
		note(lb)
	}
	for _, lb := range d.want {
		if err := r.NB.EnsureLoadBalancer(ctx, lb); err != nil {
			return fmt.Errorf("service %s: %w", key, err)
		}
		r.refs.set(lb)
		note(lb)
	}
	for _, lb := range have {
		if slices.ContainsFunc(d.want, func(w ovs.LoadBalancer) bool { return w.Name == lb.Name }) {
			continue
		}
		if err := r.NB.DeleteLoadBalancer(ctx, lb.Name); err != nil {
			return fmt.Errorf("service %s: %w", key, err)
		}
		r.refs.remove(lb.Name)
		r.Log.V(1).Info("load balancer removed", "name", lb.Name, "service", key)
	}
	for network, addrs := range touched {
		cidr := d.cidrs[network]
		for a := range addrs {
			// Backends outside the VPN (host-network endpoints such as the API server's)
			// need no route: the router sends them to the node and their replies come
			// back through OVS.
			addrs[a] = cidr.IsValid() && cidr.Contains(a) && r.refs.needed(network, a)
		}
		if err := r.NB.UpdateEndpointRoutes(ctx, network, addrs); err != nil {
			return fmt.Errorf("service %s: %w", key, err)
		}
	}
	return r.report(ctx, key, d)
}

// decision is what decide found for one Service.
type decision struct {
	want []ovs.LoadBalancer
	// cidrs maps every VPN to its CIDR (endpoint routes only for addresses inside it).
	cidrs map[string]netip.Prefix
	// vpn is the VPN of the Service's namespace when it is realised (nil: none), ranked
	// its realisable Services oldest first, and over whether this one is over the bound.
	vpn    *v1alpha1.VirtualPrivateNetwork
	ranked []string
	over   bool
	// backends counts the Service's backends before BackendsPerService, kept after.
	backends, kept int
}

// decide returns the load balancers Service req should have: none when it is gone,
// headless, not a ClusterIP kind, its namespace has no usable VPN, or it is over its
// VPN's ServicesPerVPN.
func (r *ServiceReconciler) decide(ctx context.Context, req ctrl.Request) (decision, error) {
	vpns, claims, err := ReadClaims(ctx, r.Client)
	if err != nil {
		return decision{}, err
	}
	d := decision{cidrs: map[string]netip.Prefix{}}
	for _, v := range vpns {
		if p, err := netip.ParsePrefix(v.Spec.CIDR); err == nil {
			d.cidrs[v.Name] = p.Masked()
		}
	}
	owner, err := claims.Owner(req.Namespace)
	if err != nil {
		return d, nil //nolint:nilerr // a namespace in conflict has no Service load balancers
	}
	i := slices.IndexFunc(vpns, func(v v1alpha1.VirtualPrivateNetwork) bool { return v.Name == owner })
	if i < 0 || vpns[i].Status.OVN == nil || !vpns[i].DeletionTimestamp.IsZero() {
		return d, nil // not realised (yet): the VPN's change re-runs this
	}
	d.vpn = &vpns[i]
	if d.ranked, err = r.rank(ctx, owner, claims); err != nil {
		return d, err
	}
	var svc corev1.Service
	if err := r.Client.Get(ctx, req.NamespacedName, &svc); err != nil {
		return d, client.IgnoreNotFound(err)
	}
	key := req.Namespace + "/" + req.Name
	if !realisable(&svc) {
		return d, nil
	}
	if n := r.Limits.ServicesPerVPN; n > 0 && slices.Index(d.ranked, key) >= n {
		d.over = true
		return d, nil
	}
	var eps discoveryv1.EndpointSliceList
	if err := r.Client.List(ctx, &eps, client.InNamespace(svc.Namespace),
		client.MatchingLabels{discoveryv1.LabelServiceName: svc.Name}); err != nil {
		return d, fmt.Errorf("list endpointslices: %w", err)
	}
	ports, total, ok := boundBackends(ServicePorts(&svc, eps.Items), r.Limits.BackendsPerService)
	d.backends, d.kept = total, total
	if !ok {
		d.kept = 0
		return d, nil
	}
	if total > r.Limits.BackendsPerService && r.Limits.BackendsPerService > 0 {
		d.kept = 0
		for _, p := range ports {
			d.kept += max(1, len(p.Backends))
		}
	}
	for proto, vips := range portVIPs(ports) {
		d.want = append(d.want, ovs.LoadBalancer{Name: ovs.LoadBalancerName(svc.Namespace, svc.Name, proto), Network: owner,
			Service: key, Protocol: proto, VIPs: vips})
	}
	sort.Slice(d.want, func(a, b int) bool { return d.want[a].Name < d.want[b].Name })
	return d, nil
}

// rank lists the realisable Services of VPN vpn, oldest first: those of the namespaces
// it owns (for the default VPN, of every namespace nobody claims).
func (r *ServiceReconciler) rank(ctx context.Context, vpn string, claims Claims) ([]string, error) {
	var svcs []corev1.Service
	list := func(opts ...client.ListOption) error {
		var l corev1.ServiceList
		if err := r.Client.List(ctx, &l, opts...); err != nil {
			return fmt.Errorf("list services: %w", err)
		}
		for _, s := range l.Items {
			if o, err := claims.Owner(s.Namespace); err == nil && o == vpn && realisable(&s) {
				svcs = append(svcs, s)
			}
		}
		return nil
	}
	if vpn == v1alpha1.DefaultVPNName {
		if err := list(); err != nil {
			return nil, err
		}
	} else {
		for ns, vs := range claims {
			if len(vs) == 1 && vs[0] == vpn {
				if err := list(client.InNamespace(ns)); err != nil {
					return nil, err
				}
			}
		}
	}
	oldestFirst(svcs)
	out := make([]string, len(svcs))
	for i := range svcs {
		out[i] = svcs[i].Namespace + "/" + svcs[i].Name
	}
	return out, nil
}
