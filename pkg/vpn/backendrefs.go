package vpn

import (
	"net/netip"

	"github.com/sdncni/sdncni/pkg/ovs"
)

// backendRefs counts, per network and address, the load balancers that have the address
// as a backend: the address needs its endpoint route while the count is above zero. The
// Service reconciler keeps it in step with every load balancer it writes, so a Service
// event decides its addresses' routes without reading any other Service's rows. It is
// rebuilt from NB at start, after an error and by every sweep. Not safe for concurrent
// use (the reconciler holds its lock).
type backendRefs struct {
	byLB map[string]lbBackends
	refs map[string]map[netip.Addr]int
}

type lbBackends struct {
	network string
	addrs   []netip.Addr
}

func newBackendRefs(lbs []ovs.LoadBalancer) *backendRefs {
	b := &backendRefs{byLB: map[string]lbBackends{}, refs: map[string]map[netip.Addr]int{}}
	for _, lb := range lbs {
		b.set(lb)
	}
	return b
}

// set makes lb's entry its current network and backends.
func (b *backendRefs) set(lb ovs.LoadBalancer) {
	b.remove(lb.Name)
	e := lbBackends{network: lb.Network, addrs: backendAddrs(lb.VIPs)}
	b.byLB[lb.Name] = e
	if b.refs[e.network] == nil {
		b.refs[e.network] = map[netip.Addr]int{}
	}
	for _, a := range e.addrs {
		b.refs[e.network][a]++
	}
}

// remove drops load balancer name's entry.
func (b *backendRefs) remove(name string) {
	e, ok := b.byLB[name]
	if !ok {
		return
	}
	delete(b.byLB, name)
	for _, a := range e.addrs {
		if b.refs[e.network][a]--; b.refs[e.network][a] <= 0 {
			delete(b.refs[e.network], a)
		}
	}
	if len(b.refs[e.network]) == 0 {
		delete(b.refs, e.network)
	}
}

// needed reports whether any load balancer of network has backend address a.
func (b *backendRefs) needed(network string, a netip.Addr) bool { return b.refs[network][a] > 0 }
