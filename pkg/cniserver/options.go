package cniserver

import "time"

// Defaults of the request bounds; see the With… options.
const (
	// DefaultMaxBody bounds a request body: the network configuration and the CNI_*
	// variables of one command fit many times over.
	DefaultMaxBody = 4 << 20
	// DefaultReadTimeout bounds reading one request, headers and body. The shim writes
	// its request at once; a client that stalls mid-body must not hold a goroutine.
	DefaultReadTimeout = 10 * time.Second
	// DefaultMaxInFlight bounds the concurrent requests of each command (ADD, DEL, CHECK);
	// GC runs one at a time.
	DefaultMaxInFlight = 64
	// DefaultQueueWait is how long a request waits for a free slot before it is answered
	// with code 11 (try again later).
	DefaultQueueWait = 2 * time.Second
)

// Option tunes a Server.
type Option func(*Server)

// WithNetnsPrefixes sets the directories CNI_NETNS of ADD and CHECK may name (each a
// clean absolute path; a trailing slash is added). /proc/<pid>/ns/net is always allowed
// for pid ≠ 1, and the host's network namespace never is. Default DefaultNetnsPrefixes.
func WithNetnsPrefixes(prefixes []string) Option {
	return func(s *Server) { s.netns = newNetnsPolicy(prefixes) }
}

// WithMaxInFlight bounds the concurrent requests of each command (GC stays at one) and
// how long a request waits for a slot before it gets code 11.
func WithMaxInFlight(n int, wait time.Duration) Option {
	return func(s *Server) { s.maxInFlight, s.queueWait = n, wait }
}

// WithReadTimeout bounds reading one request (headers and body).
func WithReadTimeout(d time.Duration) Option { return func(s *Server) { s.readTimeout = d } }

// WithMaxBody bounds the size of a request body; a larger one is refused with code 7.
func WithMaxBody(n int64) Option { return func(s *Server) { s.maxBody = n } }
