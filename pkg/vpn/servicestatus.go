package vpn

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
)

// namesShown bounds the Services a condition message names.
const namesShown = 5

// report keeps the Service-limit bookkeeping of d's VPN in step after Service key's
// event: Warning events on the Service when a bound starts to cut it, other Services
// whose admission changed queued again, and the VPN's ServiceLimitReached condition.
func (r *ServiceReconciler) report(ctx context.Context, key string, d decision) error {
	if d.vpn == nil {
		delete(r.admitted, key)
		delete(r.overNoted, key)
		return nil
	}
	vpn := d.vpn.Name
	if r.admitted == nil {
		r.admitted, r.overNoted, r.cut = map[string]bool{}, map[string]bool{}, map[string]map[string]string{}
	}
	bound := r.Limits.ServicesPerVPN
	for i, k := range d.ranked {
		in := bound <= 0 || i < bound
		if prev, ok := r.admitted[k]; ok && prev != in && k != key {
			r.requeue(k)
		}
		r.admitted[k] = in
	}
	if !slices.Contains(d.ranked, key) {
		delete(r.admitted, key)
	}
	if !d.over {
		delete(r.overNoted, key)
	} else if !r.overNoted[key] {
		r.overNoted[key] = true
		r.event(key, corev1.EventTypeWarning, v1alpha1.ReasonNotRealized, fmt.Sprintf(
			"VPN %s has %d Services; at most %d are realised (oldest first): this one has no load balancer", vpn, len(d.ranked), bound))
	}
	for v, m := range r.cut { // the Service may have moved VPN
		if v != vpn {
			delete(m, key)
		}
	}
	if r.cut[vpn] == nil {
		r.cut[vpn] = map[string]string{}
	}
	if d.kept < d.backends {
		why := fmt.Sprintf("%s: %d backends, %d realised", key, d.backends, d.kept)
		if r.cut[vpn][key] != why {
			r.event(key, corev1.EventTypeWarning, v1alpha1.ReasonBackendsCut, fmt.Sprintf(
				"%d backends (VIP × endpoint) over at most %d per Service: %d realised, the first endpoints of each port",
				d.backends, r.Limits.BackendsPerService, d.kept))
		}
		r.cut[vpn][key] = why
	} else {
		delete(r.cut[vpn], key)
	}
	return r.setLimitCondition(ctx, d.vpn, r.limitCondition(d.ranked, r.cut[vpn]))
}

// limitCondition is the ServiceLimitReached condition of a VPN with Services ranked
// (oldest first) and Services whose backends were cut.
func (r *ServiceReconciler) limitCondition(ranked []string, cut map[string]string) metav1.Condition {
	var over []string
	if n := r.Limits.ServicesPerVPN; n > 0 && len(ranked) > n {
		over = ranked[n:]
	}
	c := metav1.Condition{Type: v1alpha1.ConditionServiceLimitReached, Status: metav1.ConditionFalse,
		// No counts here: a message that changed with every new Service would be a
		// status write (and a VPN event) per Service.
		Reason: v1alpha1.ReasonWithinLimits, Message: fmt.Sprintf("within bounds: Services %s, backends per Service %s",
			bound(r.Limits.ServicesPerVPN), bound(r.Limits.BackendsPerService))}
	if len(over) == 0 && len(cut) == 0 {
		return c
	}
	c.Status = metav1.ConditionTrue
	var parts []string
	if len(over) > 0 {
		c.Reason = v1alpha1.ReasonServicesOverLimit
		parts = append(parts, fmt.Sprintf("services: %d, at most %d realised (oldest first); %d not realised: %s",
			len(ranked), r.Limits.ServicesPerVPN, len(over), names(over)))
	} else {
		c.Reason = v1alpha1.ReasonBackendsOverLimit
	}
	if len(cut) > 0 {
		whys := make([]string, 0, len(cut))
		for _, w := range cut {
			whys = append(whys, w)
		}
		slices.Sort(whys)
		parts = append(parts, fmt.Sprintf("backends: %d Services over at most %d per Service: %s",
			len(cut), r.Limits.BackendsPerService, names(whys)))
	}
	c.Message = strings.Join(parts, "; ")
	return c
}

// setLimitCondition writes c on the VPN when it differs from what the VPN carries (a
// False one only over a condition that is there: a VPN never over a bound has none), with
// a Warning event when the VPN goes over a bound or its overage changes. The optimistic
// concurrency of the status subresource keeps the VPN reconciler's own conditions.
func (r *ServiceReconciler) setLimitCondition(ctx context.Context, v *v1alpha1.VirtualPrivateNetwork, c metav1.Condition) error {
	cur := meta.FindStatusCondition(v.Status.Conditions, c.Type)
	if cur == nil && c.Status == metav1.ConditionFalse {
		return nil // never over: no condition, and no status write (a VPN event) per VPN
	}
	if cur != nil && cur.Status == c.Status && cur.Reason == c.Reason && cur.Message == c.Message {
		return nil
	}
	var latest v1alpha1.VirtualPrivateNetwork
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := r.Client.Get(ctx, client.ObjectKeyFromObject(v), &latest); err != nil {
			return err
		}
		c.ObservedGeneration = latest.Generation
		if !meta.SetStatusCondition(&latest.Status.Conditions, c) {
			return nil
		}
		return r.Client.Status().Update(ctx, &latest)
	})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("vpn %s: set %s: %w", v.Name, c.Type, err)
	}
	if r.Recorder != nil {
		kind := corev1.EventTypeNormal
		if c.Status == metav1.ConditionTrue {
			kind = corev1.EventTypeWarning
		}
		r.Recorder.Event(&latest, kind, c.Reason, fmt.Sprintf("%s=%s: %s", c.Type, c.Status, c.Message))
	}
	return nil
}

// event records an event on Service key.
func (r *ServiceReconciler) event(key, kind, reason, msg string) {
	if r.Recorder == nil {
		return
	}
	ns, name, _ := strings.Cut(key, "/")
	r.Recorder.Event(&corev1.Service{TypeMeta: metav1.TypeMeta{Kind: "Service", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}, kind, reason, msg)
}

// requeue queues Service key again (through kick, when SetupWithManager made it); a full
// queue drops it, and Resync comes round instead.
func (r *ServiceReconciler) requeue(key string) {
	if r.kick == nil {
		return
	}
	ns, name, _ := strings.Cut(key, "/")
	select {
	case r.kick <- event.GenericEvent{Object: &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}}:
	default:
	}
}

func bound(n int) string {
	if n <= 0 {
		return "unbounded"
	}
	return fmt.Sprintf("at most %d", n)
}

// names joins the first namesShown of s and says how many more there are.
func names(s []string) string {
	if len(s) <= namesShown {
		return strings.Join(s, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(s[:namesShown], ", "), len(s)-namesShown)
}
