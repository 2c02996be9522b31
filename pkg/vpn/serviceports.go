package vpn

import (
	"net/netip"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

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
	return portVIPs(ServicePorts(svc, eps))
}

// portVIPs is ServiceVIPs of ports already computed (and perhaps bounded).
func portVIPs(ports []ServicePort) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, p := range ports {
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
