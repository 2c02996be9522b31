// Package cniapi is the wire protocol between the sdncni CNI binary (a shim) and the
// node's sdncni-controller: HTTP over a unix socket, one JSON request per CNI command.
//
// It is deliberately small and free of datapath dependencies so that the CNI binary,
// which the container runtime executes for every pod, stays small and starts fast.
// A Client is safe for concurrent use.
package cniapi
