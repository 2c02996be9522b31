// Package ipam hands out addresses of a network to pod interfaces and keeps
// them durably on disk.
//
// A Store owns one file (for example /var/lib/sdncni/ipam.json) holding the
// allocations of every pool on the node. A Pool is a named set of address
// Ranges — a network today, a VPN's per-node blocks later — and each
// allocation belongs to an Owner identified by (ContainerID, IfName).
//
// Invariants:
//   - Within a pool no address is held by two owners, and an owner holds at
//     most one address per pool.
//   - The network address, the IPv4 broadcast address and a range's Gateway
//     are never handed out.
//   - Nothing is allocated or reserved in a fenced range (Fence: a block the
//     node is giving back). Fence checks that the range is empty and closes it
//     in one locked step, so an allocation racing a release lands elsewhere.
//   - Allocation is next-fit: it continues after the pool's last allocated
//     address, so a just-released address is not reused at once.
//   - A store file that fails to parse, is truncated or fails its SHA-256
//     checksum is reported as ErrCorrupt and never rewritten or reset.
//
// Thread-safety: a Store is safe for concurrent use by goroutines, and several
// Stores — in one process or in several — may share one file. Every operation
// takes an in-process lock and an flock(2) on "<path>.lock", then re-reads the
// file, so no two holders ever hand out the same address. Writes replace the
// file atomically (temp file, fsync, rename, fsync of the directory).
//
// The package is Linux/Unix only (flock).
package ipam
