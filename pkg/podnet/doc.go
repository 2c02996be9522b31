// Package podnet plumbs a pod's network interface: a veth pair whose pod side is the
// CNI_IFNAME in the pod's network namespace and whose host side lives in the node's
// network namespace (the namespace of the calling process), plus the pod side's MAC, MTU,
// address and default route.
//
// All functions are called from the node network namespace; they enter the pod namespace
// themselves with ns.Do on a locked OS thread. They are safe for concurrent use on
// different pods.
package podnet
