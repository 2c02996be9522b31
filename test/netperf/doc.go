// Command netperf is sdncni's built-in benchmark: on one machine, as root, it sets up two
// pods (network namespaces) per datapath — a direct veth pair, the reference bridge CNI
// plugin, sdncni over OVS and sdncni with its eBPF fast path — through each plugin's real
// binary invoked by libcni, and measures them interleaved: TCP and UDP throughput with
// iperf3, request/response latency, TCP connect rate, CPU per Gbit and pod ADD latency.
//
// It writes results.json (every raw run and the machine it ran on), results.md and two
// charts. Absolute numbers on a shared machine are noise; read the ratios to `bridge` and
// `veth` computed within one run. See docs/benchmarks.md.
package main
