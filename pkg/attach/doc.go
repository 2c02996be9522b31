// Package attach is the node role's core: it attaches a pod interface to its network and
// detaches it again. One attachment, keyed by (container ID, ifname), is made of
//
//   - an address from the network's pool (pkg/ipam),
//   - a veth pair: the pod's CNI_IFNAME and a host side in the node namespace (pkg/podnet),
//   - an OVN logical switch port with the pod's MAC and IP as addresses and port security,
//   - an OVS internal port on the integration bridge bound to it by iface-id (pkg/ovs),
//   - the eBPF programs and map entries joining the host veth and the OVS port
//     (pkg/datapath): the host veth is never itself an OVS port.
//
// Every piece carries the attachment's ownership marks, so Check, GC and Reconcile work
// from what exists rather than from memory. Add undoes what it did on failure; Del, GC
// and Reconcile succeed when pieces are already gone.
//
// A Manager is safe for concurrent use: requests for different containers run in
// parallel, requests for the same container are serialised.
package attach
