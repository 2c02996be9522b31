package metrics

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sdncni/sdncni/pkg/openflow"
	"github.com/sdncni/sdncni/pkg/ovs"
)

// DropACLSource lists the policy drop ACLs of every VPN (ovs.Northbound).
type DropACLSource interface {
	PolicyDropACLs(ctx context.Context) ([]ovs.DropACL, error)
}

// FlowCookieSource maps ACLs to the OpenFlow cookies of their flows (ovs.Southbound).
type FlowCookieSource interface {
	ACLFlowCookies(ctx context.Context, acls []string) (map[string][]uint64, error)
}

// FlowSource reads the node's OpenFlow flows by cookie (openflow.Client).
type FlowSource interface {
	FlowsByCookie(ctx context.Context, cookies []uint64) ([]openflow.Flow, error)
}

var (
	_ DropACLSource    = (*ovs.Northbound)(nil)
	_ FlowCookieSource = (*ovs.Southbound)(nil)
	_ FlowSource       = openflow.Client{}
)

// Directions of a policy drop, as the label says them.
const (
	DirectionIngress = "ingress"
	DirectionEgress  = "egress"
)

// dropKey is one exported series.
type dropKey struct{ vpn, direction string }

// flowKey names one OpenFlow flow across reads.
type flowKey struct {
	cookie   uint64
	table    uint8
	priority uint16
	match    string
}

type flowSeen struct {
	packets  uint64
	duration time.Duration
}

// PolicyDropCollector exposes sdncni_policy_dropped_packets_total{vpn,direction}: the
// packets this node's OVS dropped because a NetworkPolicy ACL of the VPN denied them.
// On every scrape it joins the VPNs' drop ACLs (NB) to their logical flows (SB) and
// reads those flows' packet counts from br-int over OpenFlow. The counts of OpenFlow
// flows start again from zero when ovn-controller reinstalls a flow (its restart, a
// recompute, a changed ACL), and vanish with the flow; the collector therefore keeps
// a running total per series from the growth of each flow between scrapes, so the
// exported counters never go backwards. Packets a flow counted between the last scrape
// and its removal are lost.
type PolicyDropCollector struct {
	acls    DropACLSource
	cookies FlowCookieSource
	flows   FlowSource

	desc *prometheus.Desc
	errs prometheus.Counter

	mu     sync.Mutex
	last   map[flowKey]flowSeen
	totals map[dropKey]uint64
}

// NewPolicyDropCollector returns a collector reading its sources on every scrape.
func NewPolicyDropCollector(acls DropACLSource, cookies FlowCookieSource, flows FlowSource) *PolicyDropCollector {
	return &PolicyDropCollector{
		acls: acls, cookies: cookies, flows: flows,
		desc: prometheus.NewDesc("sdncni_policy_dropped_packets_total",
			"Packets this node's OVS dropped because a NetworkPolicy of the VPN denied them, by the pods' direction (ingress, egress).",
			[]string{"vpn", "direction"}, nil),
		errs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sdncni_policy_drop_read_errors_total",
			Help: "Failed reads of the policy drop counters (OVN databases or OpenFlow).",
		}),
		last:   map[flowKey]flowSeen{},
		totals: map[dropKey]uint64{},
	}
}

// Describe implements prometheus.Collector.
func (c *PolicyDropCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.desc
	c.errs.Describe(ch)
}

// Collect implements prometheus.Collector. When a source fails, the totals of the last
// successful read are exported and the error counter moves.
func (c *PolicyDropCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	totals, err := c.read(ctx)
	if err != nil {
		c.errs.Inc()
	}
	for k, v := range totals {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(v), k.vpn, k.direction)
	}
	c.errs.Collect(ch)
}

// read updates the running totals from the sources and returns a copy of them. On
// error the totals are those of the last successful read.
func (c *PolicyDropCollector) read(ctx context.Context) (map[dropKey]uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	err := c.update(ctx)
	out := make(map[dropKey]uint64, len(c.totals))
	for k, v := range c.totals {
		out[k] = v
	}
	return out, err
}

func (c *PolicyDropCollector) update(ctx context.Context) error {
	acls, err := c.acls.PolicyDropACLs(ctx)
	if err != nil {
		return fmt.Errorf("policy drop acls: %w", err)
	}
	byACL := make(map[string]dropKey, len(acls))
	uuids := make([]string, 0, len(acls))
	for _, a := range acls {
		dir := DirectionIngress
		if a.Direction == "from-lport" {
			dir = DirectionEgress
		}
		dk := dropKey{vpn: a.Network, direction: dir}
		byACL[a.UUID] = dk
		uuids = append(uuids, a.UUID)
		c.totals[dk] += 0 // a VPN with a drop ACL has its series from the start
	}
	sort.Strings(uuids)
	cookiesOf, err := c.cookies.ACLFlowCookies(ctx, uuids)
	if err != nil {
		return fmt.Errorf("acl flow cookies: %w", err)
	}
	byCookie := map[uint64]dropKey{}
	var cookies []uint64
	for _, u := range uuids { // sorted: a cookie shared by two ACLs goes to the first
		for _, ck := range cookiesOf[u] {
			if _, ok := byCookie[ck]; !ok {
				byCookie[ck] = byACL[u]
				cookies = append(cookies, ck)
			}
		}
	}
	flows, err := c.flows.FlowsByCookie(ctx, cookies)
	if err != nil {
		return fmt.Errorf("openflow flows: %w", err)
	}
	seen := make(map[flowKey]flowSeen, len(flows))
	for _, f := range flows {
		k := flowKey{cookie: f.Cookie, table: f.Table, priority: f.Priority, match: f.Match}
		dk, ok := byCookie[f.Cookie]
		if !ok {
			continue
		}
		delta := f.Packets
		if prev, ok := c.last[k]; ok && f.Duration >= prev.duration && f.Packets >= prev.packets {
			delta = f.Packets - prev.packets
		}
		// else: new since the last read, or installed again (younger, or fewer packets):
		// everything it counted is new.
		c.totals[dk] += delta
		seen[k] = flowSeen{packets: f.Packets, duration: f.Duration}
	}
	c.last = seen
	return nil
}
