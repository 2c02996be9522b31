package main

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
)

// The tenants: namespaces and VirtualPrivateNetworks, through the API server.

// vpnSpec is one VPN of the demo.
type vpnSpec struct {
	name, cidr, namespace string
	blockSize             int32
}

// Both VPNs use the same CIDR. vpn-b's blocks are /27 and vpn-a's /28, so some of
// tenant-b's addresses exist in vpn-a too (another pod answers there) and some do not.
var vpns = []vpnSpec{
	{name: "vpn-a", cidr: "10.100.0.0/24", namespace: "tenant-a", blockSize: 28},
	{name: "vpn-b", cidr: "10.100.0.0/24", namespace: "tenant-b", blockSize: 27},
}

func vpnOf(namespace string) string {
	for _, v := range vpns {
		if v.namespace == namespace {
			return v.name
		}
	}
	return v1alpha1.DefaultVPNName
}

// createVPNs applies namespaces and VPNs and waits until the VPNs are Ready.
func (d *demo) createVPNs(ctx context.Context) error {
	section("2. Tenants as Kubernetes objects", "VirtualPrivateNetwork is a real CRD; two VPNs with the same CIDR each own a namespace, and the controller realises each as its own OVN router and switch")
	out, err := d.api.Kubectl(ctx, nil, "get", "crd")
	if err != nil {
		return err
	}
	say("$ kubectl get crd | grep sdncni")
	block(grepLines(out, "sdncni"))
	for _, ns := range []string{"tenant-a", "tenant-b"} {
		o := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}
		if err := d.api.Client.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create namespace %s: %w", ns, err)
		}
	}
	say("namespaces tenant-a, tenant-b created")
	t0 := time.Now()
	for _, s := range vpns {
		v := &v1alpha1.VirtualPrivateNetwork{ObjectMeta: metav1.ObjectMeta{Name: s.name},
			Spec: v1alpha1.VirtualPrivateNetworkSpec{CIDR: s.cidr, Namespaces: []string{s.namespace}, NodeBlockSize: s.blockSize}}
		if err := d.api.Client.Create(ctx, v); err != nil {
			return fmt.Errorf("create vpn %s: %w", s.name, err)
		}
		d.onCleanup("", func() error { return d.deleteVPN(s.name) })
		say("VirtualPrivateNetwork %s: cidr %s, namespaces [%s], node blocks /%d", s.name, s.cidr, s.namespace, s.blockSize)
	}
	for _, s := range vpns {
		if err := d.waitVPN(ctx, s.name, ready); err != nil {
			return err
		}
	}
	say("both Ready %s after creation", time.Since(t0).Round(10*time.Millisecond))
	if err := d.kubectlGetVPN(ctx); err != nil {
		return err
	}
	say("$ ovn-nbctl show   (OVN Northbound: one router + one switch per VPN, nothing joins two VPNs)")
	out, err = d.nbctl(ctx, "show")
	if err != nil {
		return err
	}
	block(out)
	return nil
}

func (d *demo) kubectlGetVPN(ctx context.Context) error {
	out, err := d.api.Kubectl(ctx, nil, "get", "vpn", "-o", "wide")
	if err != nil {
		return err
	}
	say("$ kubectl get vpn -o wide")
	block(out)
	return nil
}

func ready(v *v1alpha1.VirtualPrivateNetwork) bool {
	return meta.IsStatusConditionTrue(v.Status.Conditions, v1alpha1.ConditionReady) && v.Status.VPNID != 0
}

// waitVPN waits (30 s) until cond holds for the VPN.
func (d *demo) waitVPN(ctx context.Context, name string, cond func(*v1alpha1.VirtualPrivateNetwork) bool) error {
	deadline := time.Now().Add(30 * time.Second)
	var v v1alpha1.VirtualPrivateNetwork
	for {
		if err := d.api.Client.Get(ctx, client.ObjectKey{Name: name}, &v); err == nil && cond(&v) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("vpn %s: condition not met within 30s: %+v", name, v.Status)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// deleteVPN deletes a VPN and shows the finalizer removing its OVN rows. Its pods are
// already gone (cleanup runs in reverse), so the finalizer does not wait.
func (d *demo) deleteVPN(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var v v1alpha1.VirtualPrivateNetwork
	if err := d.api.Client.Get(ctx, client.ObjectKey{Name: name}, &v); apierrors.IsNotFound(err) {
		return nil
	} else if err != nil {
		return err
	}
	before := d.ownedRows(ctx, name)
	if err := d.api.Client.Delete(ctx, &v); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete vpn %s: %w", name, err)
	}
	t0 := time.Now()
	for {
		err := d.api.Client.Get(ctx, client.ObjectKey{Name: name}, &v)
		if apierrors.IsNotFound(err) {
			break
		}
		if ctx.Err() != nil {
			return fmt.Errorf("vpn %s still there after 60s (finalizers %v): %w", name, v.Finalizers, ctx.Err())
		}
		time.Sleep(50 * time.Millisecond)
	}
	after := d.ownedRows(ctx, name)
	say("vpn %s deleted; finalizer %s removed its OVN rows in %s: %s → %s", name, v1alpha1.Finalizer,
		time.Since(t0).Round(10*time.Millisecond), orNone(before), orNone(after))
	if after != "" {
		return fmt.Errorf("vpn %s: OVN rows left: %s", name, after)
	}
	return nil
}

// ownedRows lists the NB routers and switches named after the VPN.
func (d *demo) ownedRows(ctx context.Context, vpn string) string {
	var rows []string
	for _, list := range []string{"lr-list", "ls-list"} {
		out, _ := d.nbctl(ctx, list)
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) == 2 && strings.Contains(f[1], "sdncni-"+vpn) {
				rows = append(rows, strings.Trim(f[1], "()"))
			}
		}
	}
	return strings.Join(rows, ", ")
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func (d *demo) nbctl(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	full := append([]string{"--db=" + d.cluster.NBDB, "--timeout=20"}, args...)
	out, err := exec.CommandContext(ctx, "ovn-nbctl", full...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("ovn-nbctl %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimRight(string(out), "\n"), nil
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
