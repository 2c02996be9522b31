package ipam

import "errors"

var (
	// ErrExhausted means no free address is left in any range of the pool.
	ErrExhausted = errors.New("address pool exhausted")
	// ErrCorrupt means the store file exists but cannot be trusted: it does
	// not parse, is truncated, fails its checksum or holds contradictory
	// records. The file is left untouched; see the error text for recovery.
	ErrCorrupt = errors.New("ipam store corrupt")
	// ErrUnsupportedVersion means the store file was written by a newer
	// sdncni with a format this version cannot read.
	ErrUnsupportedVersion = errors.New("unsupported ipam store version")
	// ErrInUse means the requested address is held by another owner, or the
	// owner already holds a different address in the pool.
	ErrInUse = errors.New("address in use")
	// ErrInvalidPool means the pool definition is unusable: no name, no
	// ranges, a range outside its subnet, a gateway outside its subnet,
	// overlapping ranges, mixed address families or a subnet too small.
	ErrInvalidPool = errors.New("invalid address pool")
	// ErrInvalidOwner means the owner lacks a ContainerID or IfName.
	ErrInvalidOwner = errors.New("invalid owner")
	// ErrOutOfRange means a requested address is not allocatable in the pool:
	// it lies outside every range, or is a network, broadcast or gateway
	// address.
	ErrOutOfRange = errors.New("address not allocatable in pool")
	// ErrClosed means the Store was closed.
	ErrClosed = errors.New("ipam store closed")
)

// corruptHint tells an operator how to get out of an ErrCorrupt state. The
// store is never reset automatically because an empty store would hand out
// addresses that running pods still use.
const corruptHint = "the file was left untouched; stop sdncni-controller, keep a copy of the file for " +
	"analysis, then either restore a good copy or move it aside (mv FILE FILE.corrupt) and restart: " +
	"the controller re-reserves the addresses of running pods before allocating new ones"
