package main

import (
	"context"
	"errors"
	"net"
	"slices"
	"time"
)

// ErrNotAvailable marks a case that cannot run on this machine or at this stage of the
// project (for example the controller is not built yet). Such a case is reported with
// its reason and never with numbers.
var ErrNotAvailable = errors.New("not available")

// Case names, in report order: the same-node cases, then the cross-node ones.
const (
	caseVeth       = "veth"
	caseBridge     = "bridge"
	caseSdncniOVS  = "sdncni-ovs"
	caseSdncniFast = "sdncni-fast"

	caseUnderlay        = "underlay"
	caseVXLANBridge     = "vxlan-bridge"
	caseSdncniGeneve    = "sdncni-geneve"
	caseSdncniFastCross = "sdncni-fast-cross"
)

var allCases = []string{
	caseVeth, caseBridge, caseSdncniOVS, caseSdncniFast,
	caseUnderlay, caseVXLANBridge, caseSdncniGeneve, caseSdncniFastCross,
}

// group is a set of cases compared with each other and with two references of their own.
type group struct {
	Name  string
	Title string
	Cases []string
	// Refs are the references every case's medians are divided by: the usual choice of
	// a user first, the physical limit second.
	Refs [2]string
	// Chart file name prefix ("" for the same-node charts, named as before).
	ChartPrefix string
}

var groups = []group{
	{Name: "same-node", Title: "Same node", Cases: []string{caseVeth, caseBridge, caseSdncniOVS, caseSdncniFast},
		Refs: [2]string{caseBridge, caseVeth}},
	{Name: "cross-node", Title: "Across nodes", Cases: []string{caseUnderlay, caseVXLANBridge, caseSdncniGeneve, caseSdncniFastCross},
		Refs: [2]string{caseVXLANBridge, caseUnderlay}, ChartPrefix: "cross-"},
}

// groupOf is the group a case belongs to; unknown names fall in the first.
func groupOf(caseName string) group {
	for _, g := range groups {
		if slices.Contains(g.Cases, caseName) {
			return g
		}
	}
	return groups[0]
}

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
	snapshot(ctx context.Context) (snapshot, error)
	// check judges the counter deltas against the payload bytes the measurement moved;
	// it returns what it saw and the path that carried the traffic, and an error when
	// that was not the claimed path.
	check(before, after snapshot, movedBytes int64) (verdict, error)
}

// verdict is what a verifier concluded about one measurement.
type verdict struct {
	Desc string
	Path string
}

// snapshot holds counters by source ("ovs", "ul0", …).
type snapshot map[string]counters

// counters are byte and packet totals summed over a set of ports.
type counters struct {
	RxBytes, TxBytes, RxPackets, TxPackets int64
}

func (c counters) add(d counters) counters {
	return counters{c.RxBytes + d.RxBytes, c.TxBytes + d.TxBytes, c.RxPackets + d.RxPackets, c.TxPackets + d.TxPackets}
}

// bytesSince is the rx+tx bytes counted since before.
func (c counters) bytesSince(before counters) int64 {
	return c.RxBytes - before.RxBytes + c.TxBytes - before.TxBytes
}
