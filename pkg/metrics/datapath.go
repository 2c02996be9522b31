package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// CounterSource reads the fast path's counters, summed over CPUs, by reason.
type CounterSource interface {
	Counters(ctx context.Context) (map[string]uint64, error)
}

// DatapathCollector exposes sdncni_datapath_packets_total{reason=…}.
type DatapathCollector struct {
	src  CounterSource
	desc *prometheus.Desc
	errs prometheus.Counter
}

// NewDatapathCollector returns a collector reading src on every scrape.
func NewDatapathCollector(src CounterSource) *DatapathCollector {
	return &DatapathCollector{
		src: src,
		desc: prometheus.NewDesc("sdncni_datapath_packets_total",
			"Packets seen by the eBPF datapath, by verdict reason (redirect_fast, to_ovs, drop_…).",
			[]string{"reason"}, nil),
		errs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sdncni_datapath_counter_read_errors_total",
			Help: "Failed reads of the datapath counter map.",
		}),
	}
}

// Describe implements prometheus.Collector.
func (c *DatapathCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.desc
	c.errs.Describe(ch)
}

// Collect implements prometheus.Collector.
func (c *DatapathCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	counts, err := c.src.Counters(ctx)
	if err != nil {
		c.errs.Inc()
	}
	for reason, v := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(v), reason)
	}
	c.errs.Collect(ch)
}
