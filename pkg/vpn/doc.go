// Package vpn turns VirtualPrivateNetwork objects into running networks.
//
// The cluster role (ClusterReconciler, leader-elected: one writer) realises each VPN in
// OVN Northbound (its own logical router and switch, nothing connecting VPNs), assigns
// each VPN its numeric id (the fast path's VPN key), detects namespaces claimed by two
// VPNs, counts pods, and removes a VPN's OVN rows and blocks when it is deleted (held by
// a finalizer while pods are still attached).
//
// The node role (NodeNetworks) answers the attachment manager's question "which network
// does a pod of namespace N join?" from the informer cache, with no API round-trip per
// ADD, and claims per-node address blocks of a VPN's CIDR by creating VPNBlock objects:
// the block's name is derived from its CIDR, so the API server's uniqueness of names is
// what keeps two nodes from claiming the same block.
package vpn
