package vpn

import (
	"cmp"
	"net/netip"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Defaults of the per-VPN bounds (docs/configuration.md, --max-*): generous for one
// tenant's real workload, small enough that no tenant fills OVN Northbound for all.
const (
	DefaultServicesPerVPN     = 1000
	DefaultBackendsPerService = 1000
	DefaultBlocksPerVPN       = 4096
)

// Limits bound what one VPN may make sdncni write for it (issue 12, item 7): a tenant
// over a bound loses only what is over it, with a status condition and a Warning event,
// and no other VPN notices. Zero means no bound.
type Limits struct {
	// ServicesPerVPN: Services of a VPN realised as OVN load balancers, oldest first
	// (creation time, then namespace/name); the newer ones get none.
	ServicesPerVPN int
	// BackendsPerService: backends (VIP × endpoint pairs, over all ports and ClusterIPs)
	// of one Service; each VIP keeps its first endpoints (address order), an equal share.
	BackendsPerService int
	// BlocksPerVPN: VPNBlocks a VPN may hold over all nodes; a node's claim of one more
	// fails (CNI code 11) until a block is released.
	BlocksPerVPN int
}

// DefaultLimits are the bounds the controller's flags default to.
func DefaultLimits() Limits {
	return Limits{ServicesPerVPN: DefaultServicesPerVPN, BackendsPerService: DefaultBackendsPerService,
		BlocksPerVPN: DefaultBlocksPerVPN}
}

// realisable reports whether a Service gets load balancers at all (and so counts against
// ServicesPerVPN): a live ClusterIP Service with a ClusterIP.
func realisable(svc *corev1.Service) bool {
	return svc.DeletionTimestamp.IsZero() && svc.Spec.Type != corev1.ServiceTypeExternalName &&
		svc.Spec.ClusterIP != "" && svc.Spec.ClusterIP != corev1.ClusterIPNone
}

// oldestFirst sorts Services by creation time, then namespace/name: the order in which
// ServicesPerVPN admits them. A new Service never displaces a realised one (except one
// created in the same second with a smaller name).
func oldestFirst(svcs []corev1.Service) {
	slices.SortFunc(svcs, func(a, b corev1.Service) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
}

// boundBackends cuts ports to at most bound backends in all (0: no bound; a VIP with no
// backend counts as one): each port keeps its first bound/len(ports) backends in address
// order. It returns the ports, the count before the cut, and false when not even one backend per port fits (the
// Service is then not realised at all).
func boundBackends(ports []ServicePort, bound int) ([]ServicePort, int, bool) {
	total := 0
	for _, p := range ports {
		total += max(1, len(p.Backends)) // a VIP without backends is a row entry too
	}
	if bound <= 0 || total <= bound {
		return ports, total, true
	}
	if len(ports) > bound {
		return nil, total, false
	}
	share := bound / len(ports)
	out := make([]ServicePort, len(ports))
	for i, p := range ports {
		b := slices.Clone(p.Backends)
		sort.Slice(b, func(x, y int) bool { return b[x].String() < b[y].String() })
		if len(b) > share {
			b = b[:share]
		}
		out[i] = ServicePort{Protocol: p.Protocol, VIP: p.VIP, Backends: b}
	}
	return out, total, true
}

// backendAddrs returns the distinct backend addresses of load balancer VIPs.
func backendAddrs(vips map[string]string) []netip.Addr {
	var out []netip.Addr
	for _, backends := range vips {
		for _, b := range strings.Split(backends, ",") {
			if ap, err := netip.ParseAddrPort(b); err == nil && !slices.Contains(out, ap.Addr()) {
				out = append(out, ap.Addr())
			}
		}
	}
	return out
}
