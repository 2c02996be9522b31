// Package e2e holds the integration tier of the CNI: the built sdncni binary driven
// through libcni (the library container runtimes use) against a real sdncni-controller,
// OVS and OVN started by the test harness in a private directory and network namespace.
package e2e
