// Package version holds the build version of the sdncni binaries, stamped at link time.
package version

// Version is set with -ldflags "-X github.com/sdncni/sdncni/internal/version.Version=…".
var Version = "dev"
