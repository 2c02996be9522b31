// Package ociimage assembles container images from directories and root-filesystem
// tarballs without a container engine, and writes them as archives that both
// `ctr images import` and go-containerregistry's tarball reader accept.
//
// Invariants: layers made from directories are deterministic. Entries are sorted by
// path, every entry gets the same modification time (the caller's SOURCE_DATE_EPOCH),
// uid and gid 0 and no user or group names, so the same file contents and modes always
// give the same layer digest whatever the files' times or owners on disk.
//
// The package holds no state; its functions are safe for concurrent use on distinct
// paths. It does not log; errors are wrapped with the failing action.
package ociimage
