package policy

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
	cnpv1 "sigs.k8s.io/network-policy-api/apis/v1beta1"
)

// Snapshot is one VPN as policy sees it.
type Snapshot struct {
	// VPN is the VPN's name; it scopes every row Compile makes.
	VPN        string
	Namespaces []Namespace
	Pods       []Pod
	Policies   []networkingv1.NetworkPolicy
	// ClusterPolicies are every ClusterNetworkPolicy of the cluster: their subjects and
	// peers are looked up among this VPN's pods only.
	ClusterPolicies []cnpv1.ClusterNetworkPolicy
	// NodeAddrs are the addresses the nodes reach the VPN's pods from (their management
	// ports): kubelet's probes come from there, and no policy blocks them.
	NodeAddrs []netip.Addr
}

// Namespace is a namespace of the VPN.
type Namespace struct {
	Name   string
	Labels map[string]string
}

// Pod is a pod of the VPN with an address on its network (host-network pods and pods
// without an address yet are not Pods).
type Pod struct {
	Namespace, Name string
	Labels          map[string]string
	IP              netip.Addr
	Node            string
	// Ports are the pod's named container ports, by which a policy may name a port.
	Ports []NamedPort
}

// NamedPort is a container port with a name.
type NamedPort struct {
	Name     string
	Protocol corev1.Protocol
	Port     int32
}

// Key is "namespace/name".
func (p *Pod) Key() string { return p.Namespace + "/" + p.Name }

// resolve returns the number the pod gives the port name for protocol, or 0.
func (p *Pod) resolve(name string, proto corev1.Protocol) int32 {
	for _, np := range p.Ports {
		if np.Name == name && np.Protocol == proto {
			return np.Port
		}
	}
	return 0
}

// PodsFrom converts API pods into Pods: those with an IPv4 address, not on the host
// network and not finished. namedPorts of every container are kept.
func PodsFrom(pods []corev1.Pod) []Pod {
	out := make([]Pod, 0, len(pods))
	for i := range pods {
		p := &pods[i]
		if p.Spec.HostNetwork || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		ip, ok := podIPv4(p)
		if !ok {
			continue
		}
		pp := Pod{Namespace: p.Namespace, Name: p.Name, Labels: p.Labels, IP: ip, Node: p.Spec.NodeName}
		for _, c := range p.Spec.Containers {
			for _, cp := range c.Ports {
				if cp.Name == "" {
					continue
				}
				proto := cp.Protocol
				if proto == "" {
					proto = corev1.ProtocolTCP
				}
				pp.Ports = append(pp.Ports, NamedPort{Name: cp.Name, Protocol: proto, Port: cp.ContainerPort})
			}
		}
		out = append(out, pp)
	}
	return out
}

func podIPv4(p *corev1.Pod) (netip.Addr, bool) {
	for _, s := range p.Status.PodIPs {
		if a, err := netip.ParseAddr(s.IP); err == nil && a.Is4() {
			return a, true
		}
	}
	if a, err := netip.ParseAddr(p.Status.PodIP); err == nil && a.Is4() {
		return a, true
	}
	return netip.Addr{}, false
}

// index is a Snapshot prepared for lookups.
type index struct {
	s        *Snapshot
	nsByName map[string]*Namespace
}

func newIndex(s *Snapshot) *index {
	ix := &index{s: s, nsByName: make(map[string]*Namespace, len(s.Namespaces))}
	for i := range s.Namespaces {
		ix.nsByName[s.Namespaces[i].Name] = &s.Namespaces[i]
	}
	return ix
}

func (ix *index) nsLabels(name string) labels.Set {
	if ns := ix.nsByName[name]; ns != nil {
		return ns.Labels
	}
	return nil
}
