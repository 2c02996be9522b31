// Command demo shows the whole system on one machine, as root: a real Kubernetes API
// server with the sdncni CRDs, OVN central and two nodes joined by Geneve, our controller
// on each node in VPN mode, two VirtualPrivateNetworks with overlapping CIDRs mapped to
// two namespaces, pods created through libcni exactly as a container runtime would,
// connectivity inside each VPN and isolation across them, the fast-path counters, and a
// cleanup that leaves nothing behind. Run it with `make demo`; see docs/demo.md.
package main
