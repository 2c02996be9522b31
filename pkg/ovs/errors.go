package ovs

import "errors"

var (
	// ErrNotFound means the row asked for (port, bridge, logical switch…) does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict means a row with the requested name exists but belongs to someone else
	// (another owner, or not marked as sdncni's) or differs from what was asked for.
	ErrConflict = errors.New("conflict")
)
