package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/sdncni/sdncni/pkg/ovs"
)

// What pods need besides each other: kubelet's probes from the node, ClusterIP Services
// of their own VPN, and the cluster DNS, shared with every VPN.

// service creates a ClusterIP Service with the banner's TCP port and an EndpointSlice
// listing eps, and returns its ClusterIP.
func (d *demo) service(ctx context.Context, namespace, name string, eps ...*pod) (netip.Addr, error) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Ports: []corev1.ServicePort{
			{Name: "banner", Protocol: corev1.ProtocolTCP, Port: bannerPort, TargetPort: intstr.FromInt32(bannerPort)}}}}
	if err := d.api.Client.Create(ctx, svc); err != nil {
		return netip.Addr{}, fmt.Errorf("create service %s/%s: %w", namespace, name, err)
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name + "-1",
			Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports: []discoveryv1.EndpointPort{{Name: ptr.To("banner"), Protocol: ptr.To(corev1.ProtocolTCP),
			Port: ptr.To[int32](bannerPort)}},
	}
	for _, p := range eps {
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{Addresses: []string{p.ip.String()},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}})
	}
	if err := d.api.Client.Create(ctx, slice); err != nil {
		return netip.Addr{}, fmt.Errorf("create endpointslice of %s/%s: %w", namespace, name, err)
	}
	return netip.ParseAddr(svc.Spec.ClusterIP)
}

// bannerIn reads the banner of dst from the netns at path ("" and an error when none).
func bannerIn(path string, dst netip.Addr, timeout time.Duration) (string, error) {
	nns, err := ns.GetNS(path)
	if err != nil {
		return "", err
	}
	defer nns.Close()
	var c net.Conn
	err = nns.Do(func(ns.NetNS) error {
		var err error
		c, err = net.DialTimeout("tcp4", netip.AddrPortFrom(dst, bannerPort).String(), timeout)
		return err
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	return string(b), err
}

// needRow is one probe of section 4c: from a netns to an address, n TCP connections,
// and which names may answer (none: every connection must time out).
type needRow struct {
	what, from, to string
	path           string
	dst            netip.Addr
	n              int
	want           []string
	got            map[string]int
	outcome        string
	ok             bool
}

func (r *needRow) run() {
	r.got = map[string]int{}
	for range r.n {
		name, err := bannerIn(r.path, r.dst, 2*time.Second)
		var ne net.Error
		switch {
		case err == nil:
			r.got[name]++
		case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
			r.got["(timeout)"]++
		default:
			r.got[err.Error()]++
		}
	}
	var parts []string
	for k, v := range r.got {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, v))
	}
	sort.Strings(parts)
	r.outcome = strings.Join(parts, ", ")
	if len(r.want) == 0 {
		r.ok = r.got["(timeout)"] == r.n
		return
	}
	total := 0
	for _, w := range r.want {
		total += r.got[w]
		if r.got[w] == 0 {
			r.ok = false
			return
		}
	}
	r.ok = total == r.n
}

func (d *demo) needs(ctx context.Context) error {
	section("4c. What pods need: node → pod, Services, DNS", "the node reaches its pods of every VPN (kubelet probes); a ClusterIP Service is an OVN load balancer on its own VPN only; the cluster DNS Service is reachable from every VPN and opens nothing else")
	a1, a2, a3, b1, b2, dns1 := d.pod("a1"), d.pod("a2"), d.pod("a3"), d.pod("b1"), d.pod("b2"), d.pod("dns1")
	web, err := d.service(ctx, "tenant-a", "web", a2, a3)
	if err != nil {
		return err
	}
	dns, err := d.service(ctx, "kube-system", "kube-dns", dns1)
	if err != nil {
		return err
	}
	say("Service tenant-a/web %s:%d → a2, a3; Service kube-system/kube-dns %s:%d → dns1 (default VPN; DNS is shared by --dns-service)",
		web, bannerPort, dns, bannerPort)
	// Ready when OVN has the load balancer and both nodes have the DNS rules and a
	// management port in the default VPN (each node claims a block of it first).
	t0 := time.Now()
	ready := func() bool {
		for _, c := range []struct {
			p   *pod
			dst netip.Addr
		}{{a1, web}, {a1, dns}, {b2, dns}} {
			if got, _ := bannerIn(c.p.netnsPath(), c.dst, time.Second); got == "" {
				return false
			}
		}
		return true
	}
	for !ready() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if time.Since(t0) > 30*time.Second {
			d.fail("Services not reachable within 30 s")
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	say("load balancers in OVN and the nodes' shared-Service rules in place after %s", time.Since(t0).Round(10*time.Millisecond))
	out, err := d.nbctl(ctx, "--bare", "--columns=name,vips", "find", "Load_Balancer", "name="+ovs.LoadBalancerName("tenant-a", "web", "tcp"))
	if err == nil {
		say("$ ovn-nbctl find Load_Balancer name=%s  (on %s only)", ovs.LoadBalancerName("tenant-a", "web", "tcp"), ovs.SwitchName("vpn-a"))
		block(out)
	}
	node1 := d.nodes[0]
	rows := []*needRow{
		{what: "node → pod", from: node1.name + " netns", to: fmt.Sprintf("a1 %s (vpn-a)", a1.ip), path: node1.ovn.NetNSPath, dst: a1.ip, n: 1, want: []string{"a1"}},
		{what: "node → pod", from: node1.name + " netns", to: fmt.Sprintf("b1 %s (vpn-b)", b1.ip), path: node1.ovn.NetNSPath, dst: b1.ip, n: 1, want: []string{"b1"}},
		{what: "Service", from: "a1 (vpn-a)", to: fmt.Sprintf("tenant-a/web %s", web), path: a1.netnsPath(), dst: web, n: 10, want: []string{"a2", "a3"}},
		{what: "Service", from: "b2 (vpn-b)", to: fmt.Sprintf("tenant-a/web %s", web), path: b2.netnsPath(), dst: web, n: 2},
		{what: "shared DNS", from: "a1 (vpn-a)", to: fmt.Sprintf("kube-system/kube-dns %s", dns), path: a1.netnsPath(), dst: dns, n: 3, want: []string{"dns1"}},
		{what: "shared DNS", from: "b1 (vpn-b)", to: fmt.Sprintf("kube-system/kube-dns %s", dns), path: b1.netnsPath(), dst: dns, n: 3, want: []string{"dns1"}},
		{what: "DNS pod itself", from: "b1 (vpn-b)", to: fmt.Sprintf("dns1 %s (default)", dns1.ip), path: b1.netnsPath(), dst: dns1.ip, n: 2},
	}
	before, err := d.counters(ctx, node1)
	if err != nil {
		return err
	}
	var table2 [][]string
	for _, r := range rows {
		r.run()
		want := "timeout (no path)"
		switch len(r.want) {
		case 0:
		case 1:
			want = r.want[0] + " answers"
		default:
			want = strings.Join(r.want, " and ") + " answer"
		}
		table2 = append(table2, []string{r.what, r.from, r.to, want, r.outcome, yes(r.ok)})
		if !r.ok {
			d.fail("%s %s → %s: want %s, got %s", r.what, r.from, r.to, want, r.outcome)
		}
	}
	after, err := d.counters(ctx, node1)
	if err != nil {
		return err
	}
	table([]string{"case", "from", "to (TCP)", "expected", "outcome", "as expected"}, table2)
	say("%s's datapath meanwhile: to_ovs_service +%d (flows of Service endpoints' ports pass OVS for OVN's un-DNAT), redirect_fast +%d",
		node1.name, after["to_ovs_service"]-before["to_ovs_service"], after["redirect_fast"]-before["redirect_fast"])
	say("vpn-a keeps its fast path: only flows of a Service endpoint's port go through OVS; a1 → a3 otherwise stays pod to pod (4a)")
	return nil
}
