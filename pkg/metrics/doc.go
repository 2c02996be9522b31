// Package metrics exports the controller's Prometheus metrics: the fast path's
// per-reason packet counters (read from the BPF maps at scrape time) and CNI request
// counts and latencies.
package metrics
