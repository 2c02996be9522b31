// Package ovs reads and writes the two OVSDB databases sdncni programs: the node's
// Open_vSwitch database (VSwitch: the integration bridge and pod ports) and the OVN
// Northbound database (Northbound: one logical switch and router per network, and the pods'
// logical switch ports). It speaks OVSDB with libovsdb and the models generated under
// model/ from the schemas shipped by Debian; it never shells out to ovs-vsctl or ovn-nbctl.
//
// Invariants:
//   - Every row sdncni creates carries the owner mark (external_ids KeyOwner=OwnerValue) and,
//     for pod rows, the Owner keys, so CHECK, GC and restart recovery can find them again.
//   - Each write is one OVSDB transaction whose per-operation results are checked; a row
//     and the reference that attaches it (Bridge.ports, Logical_Switch.ports) are written
//     together, with server-side "mutate" operations rather than read-modify-write, so
//     concurrent writers never lose each other's ports.
//   - Reads come from the client's monitored cache. A write returns only after the cache
//     reflects it, so a Get that follows an Add sees it.
//   - Adds and deletes are idempotent: adding what already exists with the same owner and
//     deleting what is gone both succeed; adding a name held by another owner returns
//     ErrConflict.
//
// Both clients reconnect by themselves after the server restarts; calls made while
// disconnected wait for the reconnection until their context ends. VSwitch and Northbound
// are safe for concurrent use by many goroutines.
package ovs
