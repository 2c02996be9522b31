package e2e

import (
	"context"
	"net/netip"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sdncni/sdncni/internal/testenv"
	"github.com/sdncni/sdncni/pkg/ovs"
)

// serviceLB returns the vips column of the Service's load balancer for proto, or ""
// when there is none.
func serviceLB(t *testing.T, o *testenv.OVN, ns, name, proto string) string {
	t.Helper()
	return strings.TrimSpace(o.Nbctl(t, "--bare", "--columns=vips", "find", "Load_Balancer",
		"name="+ovs.LoadBalancerName(ns, name, proto)))
}

// endpointRoute reports whether vpn's router has the dst-ip route ip/32 via ip that
// delivers load-balanced packets to a backend (ovs.SetEndpointRoutes).
func endpointRoute(t *testing.T, o *testenv.OVN, vpn string, ip netip.Addr) bool {
	t.Helper()
	re := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(ip.String()) + `\s+` + regexp.QuoteMeta(ip.String()) + `\s+dst-ip`)
	return re.MatchString(o.Nbctl(t, "lr-route-list", ovs.RouterName(vpn)))
}

// endpointSlice lists pods as the Service's endpoints; notReady ones carry ready=false.
func endpointSlice(ns, svc string, pods map[string]netip.Addr, notReady ...string) *discoveryv1.EndpointSlice {
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	tcpName, udpName := "tcp", "udp"
	tcpPort, udpPort := int32(bannerPort), int32(udpPort)
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: svc + "-1",
			Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports: []discoveryv1.EndpointPort{{Name: &tcpName, Protocol: &tcp, Port: &tcpPort},
			{Name: &udpName, Protocol: &udp, Port: &udpPort}},
	}
	names := make([]string, 0, len(pods))
	for name := range pods {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ready := true
		for _, n := range notReady {
			ready = ready && n != name
		}
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{pods[name].String()},
			Conditions: discoveryv1.EndpointConditions{Ready: &ready}})
	}
	return s
}

// spread connects n times from p to the Service's TCP and UDP port (a new connection
// and source port each time) and counts which pod answered.
func spread(t *testing.T, p *pod, vip netip.Addr, n int) (tcp, udp map[string]int) {
	t.Helper()
	tcp, udp = map[string]int{}, map[string]int{}
	for range n {
		got, err := banner(p, vip, 5*time.Second)
		require.NoError(t, err, "TCP to %s", vip)
		tcp[got]++
		name, err := udpName(p, vip, 3*time.Second)
		require.NoError(t, err, "UDP to %s", vip)
		udp[name]++
	}
	return tcp, udp
}

// TestServiceClusterIP: one node with a real API server; VPN-1 and VPN-2 on the same
// CIDR. A Service of VPN-1 (ClusterIP from the API server's range, TCP and UDP) with two
// backend pods is an OVN load balancer on VPN-1 only: a client of VPN-1 reaches both
// backends through the ClusterIP, a pod of VPN-2 cannot reach it; an endpoint marked not
// ready stops getting connections; the Service's deletion removes the load balancer.
// Which path: VPN-1 keeps its fast path. Every Service packet goes through OVS — the
// client's to the ClusterIP (no pod), the backends' replies because the datapath knows
// their (VPN, address, port) as Service endpoints (a same-node reply moved pod to pod
// would skip OVN's un-DNAT and the client would never connect); a direct connection to
// a backend's port passes OVS both ways; the same pods' other traffic (ICMP here) stays
// on the fast path, and once the Service is gone their direct TCP does too.
func TestServiceClusterIP(t *testing.T) {
	api := testenv.StartAPIServer(t)
	createNamespaces(t, api, "sdncni-system", "svc-a", "svc-b")
	o := testenv.StartOVN(t)
	n := startVPNController(t, o, api, "10.95.0.0/16", "--metrics-addr", metricsAddr)
	createVPN(t, api, "svc-1", "10.96.0.0/24", "svc-a")
	createVPN(t, api, "svc-2", "10.96.0.0/24", "svc-b")
	waitVPN(t, api, "svc-1", ready)
	waitVPN(t, api, "svc-2", ready)

	ips := map[string]netip.Addr{}
	add := func(name, ns string, serve bool) *pod {
		p := newPodIn(t, name, ns)
		ips[name] = n.mustAdd(t, "1.1.0", p)
		if serve {
			serveBanner(t, p)
			serveUDPName(t, p)
		}
		t.Cleanup(func() { _ = n.del(t, "1.1.0", p) })
		return p
	}
	be1 := add("be-1", "svc-a", true)
	add("be-2", "svc-a", true)
	client1 := add("client", "svc-a", false)
	other := add("other", "svc-b", true) // VPN-2, same CIDR
	for name, ip := range ips {
		t.Logf("%s: %s", name, ip)
	}

	ctx := context.Background()
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "svc-a", Name: "web"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Ports: []corev1.ServicePort{
			{Name: "tcp", Protocol: corev1.ProtocolTCP, Port: bannerPort, TargetPort: intstr.FromInt32(bannerPort)},
			{Name: "udp", Protocol: corev1.ProtocolUDP, Port: udpPort, TargetPort: intstr.FromInt32(udpPort)},
		}}}
	require.NoError(t, api.Client.Create(ctx, svc))
	vip := netip.MustParseAddr(svc.Spec.ClusterIP)
	require.True(t, netip.MustParsePrefix(testenv.ServiceCIDR).Contains(vip), "envtest's service range: %s", vip)
	backends := map[string]netip.Addr{"be-1": ips["be-1"], "be-2": ips["be-2"]}
	slice := endpointSlice("svc-a", "web", backends)
	require.NoError(t, api.Client.Create(ctx, slice))

	start := time.Now()
	require.Eventually(t, func() bool {
		v := serviceLB(t, o, "svc-a", "web", "tcp")
		return strings.Contains(v, ips["be-1"].String()) && strings.Contains(v, ips["be-2"].String()) &&
			serviceLB(t, o, "svc-a", "web", "udp") != ""
	}, 30*time.Second, 50*time.Millisecond)
	t.Logf("Service + EndpointSlice created → load balancers in NB: %v", time.Since(start))
	t.Logf("tcp vips: %s", serviceLB(t, o, "svc-a", "web", "tcp"))
	uuid := strings.TrimSpace(o.Nbctl(t, "--bare", "--columns=_uuid", "find", "Load_Balancer",
		"name="+ovs.LoadBalancerName("svc-a", "web", "tcp")))
	require.Contains(t, o.Nbctl(t, "ls-lb-list", ovs.SwitchName("svc-1")), uuid)
	require.NotContains(t, o.Nbctl(t, "ls-lb-list", ovs.SwitchName("svc-2")), uuid)
	require.NotContains(t, o.Nbctl(t, "ls-lb-list", ovs.SwitchName("default")), uuid)
	require.Eventually(t, func() bool {
		return endpointRoute(t, o, "svc-1", ips["be-1"]) && endpointRoute(t, o, "svc-1", ips["be-2"])
	}, 10*time.Second, 50*time.Millisecond, "endpoint /32 routes on VPN-1's router: %s", o.Nbctl(t, "lr-route-list", ovs.RouterName("svc-1")))
	require.False(t, endpointRoute(t, o, "svc-2", ips["be-1"]), "VPN-2 has no endpoint routes")

	// Let ovn-controller install the load balancer's flows.
	require.Eventually(t, func() bool {
		got, err := banner(client1, vip, 2*time.Second)
		return err == nil && got != ""
	}, 20*time.Second, 200*time.Millisecond, "client reaches the ClusterIP: %v", n.datapathCounters(t))

	before := n.datapathCounters(t)
	const conns = 30
	tcp, udp := spread(t, client1, vip, conns)
	after := n.datapathCounters(t)
	delta := func(k string) int64 { return after[k] - before[k] }
	t.Logf("%d connections each: TCP %v, UDP %v", conns, tcp, udp)
	t.Logf("path: redirect_fast +%d, to_ovs_cross_vpn_or_unknown_dst +%d, to_ovs_service +%d, to_ovs_fastpath_off +%d, from_ovs +%d",
		delta("redirect_fast"), delta("to_ovs_cross_vpn_or_unknown_dst"), delta("to_ovs_service"),
		delta("to_ovs_fastpath_off"), delta("from_ovs"))
	// The client's packets (to the ClusterIP, no pod) and the backends' replies (from a
	// Service endpoint's port) pass OVS; none is redirected pod to pod.
	require.Zero(t, delta("redirect_fast"), "Service traffic must not take the fast path")
	require.Zero(t, delta("to_ovs_fastpath_off"), "the VPN's fast path stays on")
	require.GreaterOrEqual(t, delta("to_ovs_cross_vpn_or_unknown_dst"), int64(2*conns), "client → ClusterIP passes OVS")
	require.GreaterOrEqual(t, delta("to_ovs_service"), int64(2*conns), "backend replies pass OVS")
	for _, m := range []map[string]int{tcp, udp} {
		require.Len(t, m, 2, "both backends answer: %v", m)
		require.Positive(t, m["be-1"])
		require.Positive(t, m["be-2"])
	}

	// Datagrams larger than the MTU, sent as IP fragments straight to a backend's Service
	// port, arrive (the backend's replies from that port pass OVS).
	// Through the ClusterIP itself they are lost: OVN 23.03 matches its load-balancer flow
	// on udp.dst, which a non-first fragment does not carry (docs/configuration.md,
	// "Fragments on the userspace datapath").
	before = n.datapathCounters(t)
	for range 5 {
		name, err := udpNameSized(client1, ips["be-1"], 3000, 3*time.Second)
		require.NoError(t, err, "3,000-byte UDP to be-1")
		require.Equal(t, "be-1", name, "3,000-byte datagram to be-1's Service port (fragments through OVS)")
	}
	after = n.datapathCounters(t)
	require.GreaterOrEqual(t, delta("to_ovs_service"), int64(5), "be-1's replies from its Service port pass OVS")

	// The same pods off the Service's ports keep the fast path: ICMP client → be-1 is
	// redirected pod to pod; a direct TCP connection to be-1's Service port works and
	// passes OVS in both directions.
	before = n.datapathCounters(t)
	requireReaches(t, client1, ips["be-1"], be1)
	after = n.datapathCounters(t)
	t.Logf("direct client → be-1 (ICMP, then TCP to the Service port): redirect_fast +%d, to_ovs_service +%d",
		delta("redirect_fast"), delta("to_ovs_service"))
	require.Positive(t, delta("redirect_fast"), "ICMP between the pods takes the fast path")
	require.GreaterOrEqual(t, delta("to_ovs_service"), int64(2), "TCP to and from be-1's Service port passes OVS")

	// VPN-2 has no such Service: its pod's packets to the ClusterIP go nowhere.
	require.Empty(t, cannotReach(other, vip), "a pod of VPN-2 must not reach VPN-1's Service")
	got, _ := udpName(other, vip, 1200*time.Millisecond)
	require.Empty(t, got, "UDP from VPN-2 answered")

	// be-2 is not ready: every connection goes to be-1.
	require.NoError(t, api.Client.Get(ctx, client.ObjectKeyFromObject(slice), slice))
	fresh := endpointSlice("svc-a", "web", backends, "be-2")
	slice.Endpoints = fresh.Endpoints
	require.NoError(t, api.Client.Update(ctx, slice))
	require.Eventually(t, func() bool {
		return !strings.Contains(serviceLB(t, o, "svc-a", "web", "tcp"), ips["be-2"].String()) &&
			!strings.Contains(serviceLB(t, o, "svc-a", "web", "udp"), ips["be-2"].String())
	}, 30*time.Second, 50*time.Millisecond)
	time.Sleep(time.Second) // ovn-controller applies the change
	tcp, udp = spread(t, client1, vip, 20)
	require.Equal(t, map[string]int{"be-1": 20}, tcp)
	require.Equal(t, map[string]int{"be-1": 20}, udp)

	// The Service goes: its load balancers go.
	require.NoError(t, api.Client.Delete(ctx, svc))
	require.Eventually(t, func() bool {
		return serviceLB(t, o, "svc-a", "web", "tcp") == "" && serviceLB(t, o, "svc-a", "web", "udp") == ""
	}, 30*time.Second, 50*time.Millisecond, "load balancers removed with the Service")
	require.NotContains(t, o.Nbctl(t, "ls-lb-list", ovs.SwitchName("svc-1")), uuid)
	require.False(t, endpointRoute(t, o, "svc-1", ips["be-1"]), "endpoint routes removed with the Service")
	// be-1's port is no Service endpoint any more: direct TCP to it takes the fast path.
	require.Eventually(t, func() bool {
		before := n.datapathCounters(t)
		got, err := banner(client1, ips["be-1"], 2*time.Second)
		after := n.datapathCounters(t)
		return err == nil && got == "be-1" && after["to_ovs_service"] == before["to_ovs_service"] &&
			after["redirect_fast"] > before["redirect_fast"]
	}, 10*time.Second, 200*time.Millisecond, "direct TCP to be-1 back on the fast path")
}
