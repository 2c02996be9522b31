// Package ipamtest gives tests of packages that use pkg/ipam a ready Store.
//
// It returns the real file-backed Store in a per-test temporary directory
// rather than an in-memory fake: the real one needs no privileges, costs
// about a millisecond per change, and keeps callers' tests honest about
// durability and error behaviour. Consumers that want to inject failures
// should declare the narrow interface they use and fake that.
package ipamtest
