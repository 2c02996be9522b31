package main

import (
	"math"
	"time"
)

// Case statuses.
const (
	statusOK           = "ok"
	statusNotAvailable = "not available"
	statusFailed       = "failed"
)

// Metric names: every run of a case yields each of these once.
const (
	mTCP1    = "tcp1_gbps"
	mTCP4    = "tcp4_gbps"
	mRetrans = "tcp1_retransmits"
	mUDP     = "udp_gbps"
	mUDPLoss = "udp_loss_pct"
	mP50     = "rr_p50_us"
	mP99     = "rr_p99_us"
	mConnect = "connect_per_s"
	mCPU     = "cpu_s_per_gbit"
	mAdd     = "add_ms"
	// From the separate ADD/DEL loop, not per run.
	mLoopAdd = "loop_add_ms"
	mLoopDel = "loop_del_ms"
)

// Metric describes one reported figure.
type Metric struct {
	Name         string `json:"name"`
	Label        string `json:"label"`
	Unit         string `json:"unit"`
	HigherBetter bool   `json:"higher_better"`
	PerRun       bool   `json:"per_run"`
}

var metrics = []Metric{
	{mTCP1, "TCP 1 stream", "Gbit/s", true, true},
	{mTCP4, "TCP 4 streams", "Gbit/s", true, true},
	{mRetrans, "TCP 1 stream retransmits", "segments", false, true},
	{mUDP, "UDP at fixed offered load", "Gbit/s", true, true},
	{mUDPLoss, "UDP loss", "%", false, true},
	{mP50, "RR latency p50", "µs", false, true},
	{mP99, "RR latency p99", "µs", false, true},
	{mConnect, "TCP connect rate", "conn/s", true, true},
	{mCPU, "CPU per Gbit (TCP 1 stream)", "CPU-s/Gbit", false, true},
	{mAdd, "pod ADD (per pod, in round)", "ms", false, true},
	{mLoopAdd, "pod ADD (loop)", "ms", false, false},
	{mLoopDel, "pod DEL (loop)", "ms", false, false},
}

// Results is everything results.json holds.
type Results struct {
	Meta    Meta          `json:"meta"`
	Metrics []Metric      `json:"metrics"`
	Cases   []*CaseResult `json:"cases"`
}

// CaseResult is one case: its status, every raw run and the summary.
type CaseResult struct {
	Name     string            `json:"name"`
	Status   string            `json:"status"`
	Reason   string            `json:"reason,omitempty"`
	Info     map[string]string `json:"info,omitempty"`
	Offloads string            `json:"offloads,omitempty"`
	Runs     []Run             `json:"runs"`
	AddLoop  []AddDelSample    `json:"add_loop,omitempty"`
	// Summary is per metric; present only for cases with status ok.
	Summary map[string]MetricSummary `json:"summary,omitempty"`
}

// Run is one round of one case.
type Run struct {
	Round    int       `json:"round"`
	Position int       `json:"position"` // place of the case within its round
	Start    time.Time `json:"start"`
	// AddMS is each connecting operation of the round's pods: a plugin ADD per pod, or
	// the single netlink setup of the veth pair.
	AddMS   []float64          `json:"add_ms"`
	TCP1    *IperfRun          `json:"tcp1"`
	TCP4    *IperfRun          `json:"tcp4"`
	UDP     *IperfRun          `json:"udp"`
	RR      *RRRun             `json:"rr"`
	Connect *ConnectRun        `json:"connect"`
	Metrics map[string]float64 `json:"metrics"`
}

// AddDelSample is one iteration of the ADD/DEL loop.
type AddDelSample struct {
	AddMS float64 `json:"add_ms"`
	DelMS float64 `json:"del_ms"`
}

// MetricSummary is the median and spread of a metric, and the ratios of the median to
// the medians of its group's references in the same run (nil when that case has no
// value): bridge and veth for the same-node cases, vxlan-bridge and underlay for the
// cross-node ones.
type MetricSummary struct {
	Spread
	VsBridge      *float64 `json:"vs_bridge"`
	VsVeth        *float64 `json:"vs_veth"`
	VsVXLANBridge *float64 `json:"vs_vxlan_bridge,omitempty"`
	VsUnderlay    *float64 `json:"vs_underlay,omitempty"`
}

// vsRefs are the ratios to the case's group's two references, in group.Refs order.
func (s MetricSummary) vsRefs(g group) [2]*float64 {
	if g.Refs[0] == caseVXLANBridge {
		return [2]*float64{s.VsVXLANBridge, s.VsUnderlay}
	}
	return [2]*float64{s.VsBridge, s.VsVeth}
}

// runMetrics derives the per-run metrics from the raw measurements.
func runMetrics(r *Run) map[string]float64 {
	m := map[string]float64{}
	if r.TCP1 != nil {
		m[mTCP1] = r.TCP1.Gbps()
		m[mRetrans] = float64(r.TCP1.Retransmits)
		m[mCPU] = r.TCP1.CPUPerGbit()
	}
	if r.TCP4 != nil {
		m[mTCP4] = r.TCP4.Gbps()
	}
	if r.UDP != nil {
		m[mUDP] = r.UDP.Gbps()
		m[mUDPLoss] = r.UDP.LostPercent
	}
	if r.RR != nil {
		m[mP50] = r.RR.P50us
		m[mP99] = r.RR.P99us
	}
	if r.Connect != nil {
		m[mConnect] = r.Connect.PerSecond
	}
	if len(r.AddMS) > 0 {
		sum := 0.0
		for _, x := range r.AddMS {
			sum += x
		}
		m[mAdd] = sum / 2 // two pods per round
	}
	return m
}

// samples gathers a metric's values over a case's runs (or its ADD/DEL loop).
func (c *CaseResult) samples(metric string) []float64 {
	var out []float64
	switch metric {
	case mLoopAdd:
		for _, s := range c.AddLoop {
			out = append(out, s.AddMS)
		}
	case mLoopDel:
		for _, s := range c.AddLoop {
			out = append(out, s.DelMS)
		}
	default:
		for _, r := range c.Runs {
			if v, ok := r.Metrics[metric]; ok {
				out = append(out, v)
			}
		}
	}
	return out
}

// summarize fills the summaries of the ok cases, with the ratios against the references
// of each case's group.
func summarize(cases []*CaseResult) {
	byName := map[string]*CaseResult{}
	for _, c := range cases {
		c.Summary = nil
		if c.Status != statusOK {
			continue
		}
		byName[c.Name] = c
		c.Summary = map[string]MetricSummary{}
		for _, m := range metrics {
			if s, ok := spreadOf(c.samples(m.Name)); ok {
				c.Summary[m.Name] = MetricSummary{Spread: s}
			}
		}
	}
	ref := func(name, metric string) float64 {
		c, ok := byName[name]
		if !ok {
			return math.NaN()
		}
		s, ok := c.Summary[metric]
		if !ok {
			return math.NaN()
		}
		return s.Median
	}
	for _, c := range byName {
		cross := groupOf(c.Name).Refs[0] == caseVXLANBridge
		for name, s := range c.Summary {
			if cross {
				s.VsVXLANBridge = ratio(s.Median, ref(caseVXLANBridge, name))
				s.VsUnderlay = ratio(s.Median, ref(caseUnderlay, name))
			} else {
				s.VsBridge = ratio(s.Median, ref(caseBridge, name))
				s.VsVeth = ratio(s.Median, ref(caseVeth, name))
			}
			c.Summary[name] = s
		}
	}
}
