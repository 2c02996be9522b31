// Package testenv gives tests the environments they need: a gate for the privileged tier
// and a harness that starts real OVS/OVN daemons in a private directory and network
// namespace (StartOVN), or several such nodes sharing one OVN central and joined by
// Geneve over an underlay (StartCluster). Under CI (CI=true) a missing prerequisite fails the test instead of skipping
// it, so a green run never hides tests that did not run.
package testenv
