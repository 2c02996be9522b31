// Package cniserver serves the CNI protocol of package cniapi on the controller's unix
// socket and turns each request into a call on the attachment manager (package attach).
// It owns the mapping from Go errors to CNI error codes.
//
// The server handles requests concurrently; the manager serialises requests for the same
// container. It does not trust its client beyond what the socket's mode implies: reading
// a request is bounded in time and size, the requests in flight are bounded per command
// (a full command is answered with code 11), and ADD and CHECK only enter a CNI_NETNS
// that is a pod's network namespace, never the node's own (see netnsPolicy).
package cniserver
