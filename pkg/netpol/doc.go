// Package netpol realises Kubernetes NetworkPolicy and ClusterNetworkPolicy
// (policy.networking.k8s.io) per VPN. The cluster role's Reconciler (one owner,
// leader-elected) turns each VPN's policies into OVN address sets
// and ACLs on the VPN's logical switch (pkg/policy computes them); the node role's
// FastPathReconciler writes what policy allows between the node's pods into the eBPF
// fast path, which delivers only that (and the replies of connections it admitted) and
// hands the rest to OVS, where OVN's ACLs decide. docs/policy.md describes both.
package netpol
