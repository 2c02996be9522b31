// Package tunnelneigh keeps the next hop of every tunnel peer resolved in the kernel, so
// that OVS's userspace datapath always knows it (docs/datapath.md, "Tunnel next hops").
//
// OVS's userspace datapath routes its tunnels itself ("native tunneling"): it needs the
// MAC of the next hop towards a peer's tunnel endpoint, learns it only by snooping ARP
// and ND replies that pass its bridges, forgets it after 15 minutes without use, and
// drops a packet whose next hop it does not know (it sends an ARP request instead). A
// [Keeper] makes a managed neighbor entry (NTF_EXT_MANAGED) on the tunnel bridge's
// internal port for every peer: the kernel resolves it at once and again whenever it
// goes stale, and each answer passes the bridge, where OVS snoops it. The first packet
// to a new node, or to one Geneve has not reached for a while, then finds its next hop.
//
// The kernel datapath has no such cache (its tunnels resolve through the kernel's own
// neighbor table, which queues), so the controller runs a Keeper only for netdev.
package tunnelneigh
