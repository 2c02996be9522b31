package main

import (
	"context"
	"errors"
	"net"
	"time"
)

// ErrNotAvailable marks a case that cannot run on this machine or at this stage of the
// project (for example the controller is not built yet). Such a case is reported with
// its reason and never with numbers.
var ErrNotAvailable = errors.New("not available")

// Case names, in report order.
const (
	caseVeth       = "veth"
	caseBridge     = "bridge"
	caseSdncniOVS  = "sdncni-ovs"
	caseSdncniFast = "sdncni-fast"
)

var allCases = []string{caseVeth, caseBridge, caseSdncniOVS, caseSdncniFast}

// pod is one end of a measurement: a network namespace with an address.
type pod struct {
	Name   string `json:"name"`
	NetNS  string `json:"netns"`
	IP     net.IP `json:"ip"`
	IfName string `json:"ifname"`
}

// podPair is the client (A) and server (B) of a measurement.
type podPair struct{ A, B pod }

// datapath is one case: a way of connecting two pods.
type datapath interface {
	Name() string
	// Setup prepares what lives across rounds (daemons, configs). An error wrapping
	// ErrNotAvailable means the case is reported as not available.
	Setup(ctx context.Context) error
	// AddPods creates the two pods and connects them, returning the time each
	// connecting operation took (a plugin ADD per pod; one netlink setup for veth).
	AddPods(ctx context.Context, round int) (podPair, []time.Duration, error)
	// DelPods disconnects and deletes the pods; idempotent.
	DelPods(ctx context.Context) error
	// AddDel adds and deletes one extra pod, timing both, for the ADD latency loop.
	// It returns errors.ErrUnsupported when the case has no plugin.
	AddDel(ctx context.Context, i int) (add, del time.Duration, err error)
	// Verifier checks that traffic took the claimed path; nil when nothing to check.
	Verifier() verifier
	// Info describes the datapath for the report (mode, versions).
	Info(ctx context.Context) map[string]string
	// Teardown undoes Setup; idempotent.
	Teardown(ctx context.Context) error
}

// podNetNSName is the namespace name of pod suffix ("a", "b", "loop") of a case.
func podNetNSName(caseName, suffix string) string {
	return namePrefix + "-" + caseName + "-" + suffix
}

// verifier reads the datapath's own counters around a measurement.
type verifier interface {
	snapshot(ctx context.Context) (counters, error)
	// check judges the counter deltas against the payload bytes the measurement moved;
	// it returns a short description of what it saw, and an error when the traffic did
	// not take the claimed path.
	check(before, after counters, movedBytes int64) (string, error)
}

// counters are byte and packet totals summed over a set of ports.
type counters struct {
	RxBytes, TxBytes, RxPackets, TxPackets int64
}
