package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
	"github.com/sdncni/sdncni/internal/testenv"
)

// runVPNs measures the VPN figures of issue 4 against a real API server: VPN created →
// Ready, pod ADD latency with one VPN and spread over many, and the controller's RSS with
// o.vpns VPNs × o.podsPerVPN pods.
func runVPNs(ctx context.Context, o opts) error {
	fmt.Fprintln(os.Stderr, "starting the API server (the first run on a machine builds it: ~15 min)")
	api, err := testenv.LaunchAPIServer(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if err := api.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop API server:", err)
		}
	}()
	u, err := url.Parse(api.Config.Host)
	if err != nil {
		return err
	}
	c := api.Client
	if err := createNS(ctx, c, "sdncni-system"); err != nil {
		return err
	}
	var stopFwd func()
	defer func() {
		if stopFwd != nil {
			stopFwd()
		}
	}()
	e, err := startEnvWith(ctx, mustAbs(o.bin), o.dir, func(netnsPath string) ([]string, error) {
		var err error
		stopFwd, err = testenv.Forward(netnsPath, u.Host)
		return []string{"--kubeconfig", api.Kubeconfig, "--node-block-size", "27"}, err
	})
	if err != nil {
		return err
	}
	defer e.stop()
	fmt.Printf("sdncni VPN benchmark: real API server, OVS netdev + OVN, %d CPUs\n\n", cpus())

	// VPN created → Ready.
	var ready []time.Duration
	for i := range o.vpns {
		name := fmt.Sprintf("bench-%d", i)
		if err := createNS(ctx, c, name); err != nil {
			return err
		}
		start := time.Now()
		v := &v1alpha1.VirtualPrivateNetwork{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: v1alpha1.VirtualPrivateNetworkSpec{CIDR: fmt.Sprintf("10.%d.%d.0/24", 100+i/250, i%250),
				Namespaces: []string{name}, NodeBlockSize: 27}}
		if err := c.Create(ctx, v); err != nil {
			return fmt.Errorf("create vpn %s: %w", name, err)
		}
		if err := waitReady(ctx, c, name); err != nil {
			return err
		}
		ready = append(ready, time.Since(start))
	}
	fmt.Printf("%-28s %8s %8s %8s %8s\n", "operation", "p50", "p99", "max", "n")
	printRow("VPN created → Ready", ready)

	// ADD latency: all pods in one VPN, then spread round-robin over 20 (or o.vpns).
	one, err := e.addLatency(ctx, o.n, func(int) string { return "bench-0" })
	if err != nil {
		return err
	}
	spread := min(20, o.vpns)
	many, err := e.addLatency(ctx, o.n, func(i int) string { return fmt.Sprintf("bench-%d", i%spread) })
	if err != nil {
		return err
	}
	printRow("ADD, 1 VPN", one)
	printRow(fmt.Sprintf("ADD, spread over %d VPNs", spread), many)
	p99 := func(d []time.Duration) time.Duration { return d[min(len(d)-1, len(d)*99/100)] }
	fmt.Printf("ADD p99 ratio (%d VPNs / 1 VPN): %.2f\n", spread, float64(p99(many))/float64(p99(one)))

	// RSS with every VPN holding podsPerVPN pods.
	before := e.rssMiB()
	var all []pod
	defer func() { e.cleanup(ctx, all) }()
	total := o.vpns * o.podsPerVPN
	for len(all) < total {
		fmt.Fprintf(os.Stderr, "\rpods up %d/%d", len(all), total)
		batch, err := e.makePods(min(o.parallel, total-len(all)))
		if err != nil {
			return err
		}
		for i := range batch {
			batch[i].k8sNamespace = fmt.Sprintf("bench-%d", (len(all)+i)%o.vpns)
		}
		all = append(all, batch...)
		if _, err := e.burst(ctx, batch, e.add); err != nil {
			return err
		}
	}
	fmt.Fprintln(os.Stderr)
	fmt.Printf("\ncontroller RSS with %d VPNs × %d pods: %.1f MiB (before the pods: %.1f MiB)\n",
		o.vpns, o.podsPerVPN, e.rssMiB(), before)
	return nil
}

// addLatency times n sequential ADDs (each followed by its DEL) with ns(i) as the pod's
// Kubernetes namespace.
func (e *env) addLatency(ctx context.Context, n int, ns func(int) string) ([]time.Duration, error) {
	var out []time.Duration
	for i := range n {
		p, err := e.newPod()
		if err != nil {
			return nil, err
		}
		p.k8sNamespace = ns(i)
		d, err := e.add(ctx, p)
		if err != nil {
			p.remove()
			return nil, fmt.Errorf("add in %s: %w", p.k8sNamespace, err)
		}
		_, err = e.del(ctx, p)
		p.remove()
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

func isAlreadyExists(err error) bool { return apierrors.IsAlreadyExists(err) }

func createNS(ctx context.Context, c client.Client, name string) error {
	err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if err != nil && !isAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return nil
}

func waitReady(ctx context.Context, c client.Client, name string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var v v1alpha1.VirtualPrivateNetwork
		if err := c.Get(ctx, client.ObjectKey{Name: name}, &v); err == nil &&
			meta.IsStatusConditionTrue(v.Status.Conditions, v1alpha1.ConditionReady) && v.Status.VPNID != 0 {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("vpn %s not Ready within 30s", name)
}
