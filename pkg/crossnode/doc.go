// Package crossnode runs the node side of the cross-node fast path (docs/datapath.md,
// "Cross-node fast path"): it keeps the node's collect-metadata VXLAN device, probes
// the nodes that hold other blocks of this node's VPNs, and writes into the datapath
// only the blocks of nodes that answered recently. A node that does not run the path,
// has it switched off, or whose VXLAN port is blocked in either direction never
// answers, so its blocks keep taking OVN's Geneve: the fallback is discovered, not
// assumed.
//
// # Thread-safety
//
// A [Peers] is safe for concurrent use: SetCandidates may be called from any goroutine
// while Run is running.
package crossnode
