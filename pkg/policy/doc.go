// Package policy computes what Kubernetes NetworkPolicy (networking.k8s.io/v1) and
// ClusterNetworkPolicy (policy.networking.k8s.io, its Admin tier before NetworkPolicy and
// its Baseline tier after) mean inside one VPN: which pods are isolated or governed in
// which direction, which packets are allowed (Allowed, the reference semantics; PairPorts
// for every port at once), and the OVN address sets and ACLs that enforce it on the VPN's
// logical switch (Compile). It does no I/O: callers give it a Snapshot of one VPN (its
// namespaces, pods and policies) taken from their informers.
//
// A policy lives in its namespace's VPN; a ClusterNetworkPolicy is read against each VPN
// separately. Subjects and peers are looked up among the namespaces and pods of that VPN
// only, and ipBlocks and networks are read in the VPN's own address space, so a peer in
// another VPN never opens a path across VPNs and overlapping CIDRs cannot alias.
package policy
