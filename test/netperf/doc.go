// Command netperf is sdncni's built-in benchmark. On one machine, as root, it builds two
// simulated nodes (network namespaces joined by an underlay namespace with a Linux
// bridge, OVS/OVN on each from hack/dev-env.sh) and connects two pods per case — on one
// node: a direct veth pair, the reference bridge CNI plugin, sdncni over OVS and sdncni
// with its eBPF fast path; across the nodes: the bare kernel underlay, flannel-style
// kernel VXLAN between Linux bridges, sdncni over OVN's Geneve and sdncni with its fast
// path on — through each plugin's real binary invoked by libcni. It measures them
// interleaved: TCP and UDP throughput with iperf3, request/response latency, TCP connect
// rate, CPU per Gbit and pod ADD latency, and checks from the datapaths' own counters
// which path carried each iperf3 run.
//
// It writes results.json (every raw run and the machine it ran on), results.md and
// charts. Absolute numbers on a shared machine are noise; read the ratios computed
// within one run: to `bridge` and `veth` on one node, to `vxlan-bridge` and `underlay`
// across nodes. See docs/benchmarks.md.
package main
