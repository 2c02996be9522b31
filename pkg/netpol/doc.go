// Package netpol realises Kubernetes NetworkPolicy per VPN. The cluster role's
// Reconciler (one owner, leader-elected) turns each VPN's policies into OVN address sets
// and ACLs on the VPN's logical switch (pkg/policy computes them); the node role's
// FastPathReconciler keeps the pods a policy isolates off the eBPF fast path, so OVN's
// stateful ACLs see all of their traffic. docs/policy.md describes both.
package netpol
