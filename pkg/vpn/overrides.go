package vpn

import (
	"sync"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
)

// FastPathOverrides are the VPNs whose fast path this node keeps off whatever their spec
// says, with the reason (a VPN over its bound of Service endpoints on this node). The
// FastPathReconciler reads it and re-runs for a VPN whenever its entry changes (Events).
// Safe for concurrent use; the zero value is not: use NewFastPathOverrides.
type FastPathOverrides struct {
	mu     sync.Mutex
	off    map[uint32]string
	events chan event.GenericEvent
}

// NewFastPathOverrides returns an empty set.
func NewFastPathOverrides() *FastPathOverrides {
	return &FastPathOverrides{off: map[uint32]string{}, events: make(chan event.GenericEvent, 1024)}
}

// Off reports whether the fast path of VPN id is held off, and why.
func (o *FastPathOverrides) Off(id uint32) (string, bool) {
	if o == nil {
		return "", false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	why, ok := o.off[id]
	return why, ok
}

// Set holds the fast path of VPN name (id) off for why ("" releases it) and reports
// whether that changed anything.
func (o *FastPathOverrides) Set(id uint32, name, why string) bool {
	o.mu.Lock()
	old, had := o.off[id]
	switch {
	case why == "" && had:
		delete(o.off, id)
	case why != "" && (!had || old != why):
		o.off[id] = why
	default:
		o.mu.Unlock()
		return false
	}
	o.mu.Unlock()
	v := &v1alpha1.VirtualPrivateNetwork{}
	v.Name = name
	select {
	case o.events <- event.GenericEvent{Object: client.Object(v)}:
	default: // full: the reconciler's periodic and event-driven runs catch up
	}
	return true
}

// Events is the channel the FastPathReconciler watches.
func (o *FastPathOverrides) Events() <-chan event.GenericEvent { return o.events }
