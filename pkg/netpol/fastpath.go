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

	"github.com/sdncni/sdncni/pkg/attach"
)

// Isolation answers attach.PodPolicy from the node's informer cache: a pod that any
// NetworkPolicy of its namespace selects (in either direction) starts off the fast path,
// and the FastPathReconciler switches it on once it has written the pod's policy
// entries (the datapath then keeps them across re-Attach).
type Isolation struct {
	Cache client.Reader
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
	if len(pols.Items) == 0 {
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
	return false, nil
}
