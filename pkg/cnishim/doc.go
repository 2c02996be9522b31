// Package cnishim is the body of the sdncni CNI binary. It validates the runtime's
// configuration and environment, forwards each command to the node's sdncni-controller
// (package cniapi), and prints the controller's answer in the CNI version the runtime
// asked for. It keeps no state: everything that lasts lives in the controller.
//
// Error codes it produces itself: 7 for a bad configuration, 11 when the controller cannot
// be reached for ADD/CHECK/DEL/GC, 50 when it cannot be reached for STATUS. Codes 1, 4 and
// 6 come from skel (unsupported version, bad environment, undecodable config).
package cnishim
