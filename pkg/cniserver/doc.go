// Package cniserver serves the CNI protocol of package cniapi on the controller's unix
// socket and turns each request into a call on the attachment manager (package attach).
// It owns the mapping from Go errors to CNI error codes.
//
// The server handles requests concurrently; the manager serialises requests for the same
// container.
package cniserver
