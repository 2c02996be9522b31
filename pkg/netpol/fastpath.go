package netpol

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"
	cnpv1 "sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/sdncni/sdncni/pkg/attach"
)

// Isolation answers attach.PodPolicy from the node's informer cache: a pod that any
// NetworkPolicy of its namespace or any ClusterNetworkPolicy selects (in either
// direction) starts off the fast path, and the FastPathReconciler switches it on once it
// has written the pod's policy entries (the datapath then keeps them across re-Attach).
type Isolation struct {
	Cache client.Reader
	// ClusterPolicies: the API serves ClusterNetworkPolicy (ClusterPoliciesServed).
	ClusterPolicies bool
}

var _ attach.PodPolicy = (*Isolation)(nil)

// FastPathAllowed reports whether no policy selects the pod. When the cache cannot
// answer, the pod starts off the fast path: OVS enforces policy either way, the fast
// path only what the node role has written for it.
func (i *Isolation) FastPathAllowed(ctx context.Context, podNamespace, podName string) bool {
	isolated, err := i.isolated(ctx, podNamespace, podName)
	return err == nil && !isolated
}

func (i *Isolation) isolated(ctx context.Context, ns, name string) (bool, error) {
	var pols networkingv1.NetworkPolicyList
	if err := i.Cache.List(ctx, &pols, client.InNamespace(ns)); err != nil {
		return false, fmt.Errorf("list networkpolicies: %w", err)
	}
	var cnps cnpv1.ClusterNetworkPolicyList
	if i.ClusterPolicies {
		if err := i.Cache.List(ctx, &cnps); err != nil {
			return false, fmt.Errorf("list clusternetworkpolicies: %w", err)
		}
	}
	if len(pols.Items) == 0 && len(cnps.Items) == 0 {
		return false, nil
	}
	var pod corev1.Pod
	if err := i.Cache.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &pod); err != nil && !apierrors.IsNotFound(err) {
		return false, fmt.Errorf("get pod: %w", err)
	}
	for _, p := range pols.Items {
		sel, err := metav1.LabelSelectorAsSelector(&p.Spec.PodSelector)
		if err != nil || sel.Matches(labels.Set(pod.Labels)) {
			return true, nil // an unreadable selector: OVS decides
		}
	}
	if len(cnps.Items) == 0 {
		return false, nil
	}
	var nsObj corev1.Namespace
	if err := i.Cache.Get(ctx, client.ObjectKey{Name: ns}, &nsObj); err != nil && !apierrors.IsNotFound(err) {
		return false, fmt.Errorf("get namespace: %w", err)
	}
	for _, c := range cnps.Items {
		if selects(&c.Spec.Subject, nsObj.Labels, pod.Labels) {
			return true, nil
		}
	}
	return false, nil
}

// selects reports whether a ClusterNetworkPolicy subject may select the pod (true for a
// selector it cannot read: OVS decides).
func selects(s *cnpv1.ClusterNetworkPolicySubject, nsLabels, podLabels map[string]string) bool {
	nsSel, podSel := s.Namespaces, (*metav1.LabelSelector)(nil)
	if s.Pods != nil {
		nsSel, podSel = &s.Pods.NamespaceSelector, &s.Pods.PodSelector
	}
	for _, x := range []struct {
		sel    *metav1.LabelSelector
		labels map[string]string
	}{{nsSel, nsLabels}, {podSel, podLabels}} {
		if x.sel == nil {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(x.sel)
		if err != nil {
			return true
		}
		if !sel.Matches(labels.Set(x.labels)) {
			return false
		}
	}
	return nsSel != nil || podSel != nil
}
