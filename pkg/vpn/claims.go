package vpn

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
)

// Claims maps each namespace to the VPNs that claim it (by name or selector), the default
// VPN excluded unless it claims explicitly.
type Claims map[string][]string

// ComputeClaims evaluates every VPN's namespace list and selector against the namespaces.
// VPNs being deleted claim nothing.
func ComputeClaims(vpns []v1alpha1.VirtualPrivateNetwork, namespaces []corev1.Namespace) (Claims, error) {
	c := Claims{}
	for i := range vpns {
		v := &vpns[i]
		if !v.DeletionTimestamp.IsZero() {
			continue
		}
		var sel labels.Selector
		if v.Spec.NamespaceSelector != nil {
			s, err := metav1.LabelSelectorAsSelector(v.Spec.NamespaceSelector)
			if err != nil {
				return nil, fmt.Errorf("vpn %s: namespaceSelector: %w", v.Name, err)
			}
			sel = s
		}
		claimed := map[string]bool{}
		for _, ns := range v.Spec.Namespaces {
			claimed[ns] = true
		}
		if sel != nil && !sel.Empty() {
			for _, ns := range namespaces {
				if sel.Matches(labels.Set(ns.Labels)) {
					claimed[ns.Name] = true
				}
			}
		}
		for ns := range claimed {
			c[ns] = append(c[ns], v.Name)
		}
	}
	for ns := range c {
		sort.Strings(c[ns])
	}
	return c, nil
}

// ReadClaims lists the VPNs and Namespaces through c and computes their Claims; it
// returns the VPNs too, which every caller needs next.
func ReadClaims(ctx context.Context, c client.Reader) ([]v1alpha1.VirtualPrivateNetwork, Claims, error) {
	var vpns v1alpha1.VirtualPrivateNetworkList
	if err := c.List(ctx, &vpns); err != nil {
		return nil, nil, fmt.Errorf("list vpns: %w", err)
	}
	var nss corev1.NamespaceList
	if err := c.List(ctx, &nss); err != nil {
		return nil, nil, fmt.Errorf("list namespaces: %w", err)
	}
	claims, err := ComputeClaims(vpns.Items, nss.Items)
	return vpns.Items, claims, err
}

// Owner returns the VPN a namespace's new pods join: its single claimer, the default VPN
// when nobody claims it, or an error naming the VPNs in conflict.
func (c Claims) Owner(ns string) (string, error) {
	switch vs := c[ns]; len(vs) {
	case 0:
		return v1alpha1.DefaultVPNName, nil
	case 1:
		return vs[0], nil
	default:
		return "", fmt.Errorf("%w: namespace %s is claimed by %v", ErrConflict, ns, vs)
	}
}

// ConflictsOf lists the namespaces vpn claims that another VPN claims too.
func (c Claims) ConflictsOf(vpn string) []string {
	var out []string
	for ns, vs := range c {
		if len(vs) > 1 && slices.Contains(vs, vpn) {
			out = append(out, ns)
		}
	}
	sort.Strings(out)
	return out
}

// Owned counts the namespaces vpn owns without conflict.
func (c Claims) Owned(vpn string) int {
	n := 0
	for _, vs := range c {
		if len(vs) == 1 && vs[0] == vpn {
			n++
		}
	}
	return n
}

// Gateway is a VPN's router address: the first address of its CIDR.
func Gateway(cidr netip.Prefix) netip.Addr { return cidr.Masked().Addr().Next() }
