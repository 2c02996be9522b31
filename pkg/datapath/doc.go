// Package datapath loads, attaches and programs the sdncni eBPF fast path (bpf/).
//
// Each pod has a veth pair (eth0 in the pod, the host side in the node netns) and an OVS
// internal port (a tap in the node netns carrying the OVN binding). The host veth is not
// an OVS port. sdncni_from_pod runs at ingress of the host veth and either delivers a
// same-VPN IPv4 packet from a verified source straight into the destination pod
// (bpf_redirect_peer) or hands it to OVS by transmitting it on the pod's OVS port;
// sdncni_from_ovs runs at ingress of the OVS port and delivers what OVS sends into the
// pod. With the cross-node path on ([Datapath.SetCrossNode]), from_pod sends same-VPN IPv4
// for other nodes' blocks ([Datapath.SetRemoteBlocks]) to the node's VXLAN device, where
// sdncni_from_vxlan delivers what arrives into the VNI's VPN only. See docs/datapath.md.
//
// # Invariants
//
//   - Every program, map and pin is named with the sdncni prefix; maps are pinned under
//     <PinDir>/maps, TCX links under <PinDir>/links/<ifname>-<hook>. Nothing else of ours
//     exists in the kernel, so [Datapath.Teardown] can remove all of it.
//   - Map entries are written before the programs are attached (Attach) and removed after
//     they are detached (Detach). An entry keyed by ifindex or {VPN, IP} is only removed
//     when it still describes the endpoint being detached, so a stale Detach never
//     removes a newer endpoint's entries.
//   - Pins outlive the process: [Datapath.Close] keeps them (links stay attached, maps
//     keep their contents) and [Open] adopts them, atomically replacing the program of
//     every pinned TCX link (or tc filter) with the freshly loaded one: traffic never
//     sees a detached interface.
//   - No program ever passes a pod packet to the node's own stack.
//
// # Threads and namespaces
//
// Interface indexes are resolved in the network namespace of the calling thread: call
// Open, Attach, Detach, Check, Endpoints and Teardown from the node network namespace (the
// controller runs there; tests use ns.Do). A [Datapath] is safe for concurrent use;
// Attach and Detach of different endpoints may run concurrently. Operations on the same
// endpoint must be serialized by the caller, and Close and Teardown must not run
// concurrently with anything else.
package datapath
