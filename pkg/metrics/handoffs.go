package metrics

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// HandoffSource reads the fast path's policy hand-offs to OVS by VPN ID
// (datapath.Datapath).
type HandoffSource interface {
	PolicyHandoffs(ctx context.Context) (map[uint32]uint64, error)
}

// PolicyHandoffCollector exposes sdncni_policy_to_ovs_packets_total{vpn}: the packets
// the fast path handed to OVS because a NetworkPolicy governs them and it did not know
// them to be allowed, by the sender's VPN. The fast path never drops for policy; OVS
// then allows such a packet or drops it (sdncni_policy_dropped_packets_total).
type PolicyHandoffCollector struct {
	src   HandoffSource
	names func() map[uint32]string
	desc  *prometheus.Desc
	errs  prometheus.Counter
}

// NewPolicyHandoffCollector returns a collector reading src on every scrape; names maps
// the VPN IDs of the fast path's maps to VPN names (an ID it does not know, e.g. of a
// VPN gone from the node, is exported as "id-<n>").
func NewPolicyHandoffCollector(src HandoffSource, names func() map[uint32]string) *PolicyHandoffCollector {
	return &PolicyHandoffCollector{
		src: src, names: names,
		desc: prometheus.NewDesc("sdncni_policy_to_ovs_packets_total",
			"Packets the eBPF fast path handed to OVS because a NetworkPolicy governs them and it did not know them to be allowed, by the sender's VPN.",
			[]string{"vpn"}, nil),
		errs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sdncni_policy_to_ovs_read_errors_total",
			Help: "Failed reads of the fast path's policy hand-off counters.",
		}),
	}
}

// Describe implements prometheus.Collector.
func (c *PolicyHandoffCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.desc
	c.errs.Describe(ch)
}

// Collect implements prometheus.Collector.
func (c *PolicyHandoffCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	counts, err := c.src.PolicyHandoffs(ctx)
	if err != nil {
		c.errs.Inc()
	}
	names := c.names()
	for id, v := range counts {
		name, ok := names[id]
		if !ok {
			name = "id-" + strconv.FormatUint(uint64(id), 10)
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(v), name)
	}
	c.errs.Collect(ch)
}
