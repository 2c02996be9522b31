package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
)

// RRRun is one request/response latency run: Count round trips of Size bytes each way
// over one TCP connection (TCP_NODELAY), after a short warm-up.
type RRRun struct {
	Size    int     `json:"size"`
	Count   int     `json:"count"`
	Seconds float64 `json:"seconds"`
	P50us   float64 `json:"p50_us"`
	P90us   float64 `json:"p90_us"`
	P99us   float64 `json:"p99_us"`
	MinUs   float64 `json:"min_us"`
	MaxUs   float64 `json:"max_us"`
}

// ConnectRun is one TCP connect-rate run: connections opened and closed one after the
// other for at most Count connections or the time bound.
type ConnectRun struct {
	Count     int     `json:"count"`
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"per_second"`
}

// echoServer listens in pod B and echoes fixed-size messages on every connection.
type echoServer struct {
	ln   net.Listener
	size int
	wg   sync.WaitGroup
}

// startEcho creates the listening socket inside pod B's namespace (a socket keeps the
// namespace it was created in), then serves it from ordinary goroutines.
func startEcho(b pod, size int) (*echoServer, error) {
	target, err := ns.GetNS(b.NetNS)
	if err != nil {
		return nil, fmt.Errorf("open netns: %w", err)
	}
	defer target.Close()
	var ln net.Listener
	err = target.Do(func(ns.NetNS) error {
		var err error
		ln, err = net.Listen("tcp4", net.JoinHostPort(b.IP.String(), "0"))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen in %s: %w", b.NetNS, err)
	}
	s := &echoServer{ln: ln, size: size}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

func (s *echoServer) addr() string { return s.ln.Addr().String() }

func (s *echoServer) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			buf := make([]byte, s.size)
			for {
				if _, err := io.ReadFull(c, buf); err != nil {
					return
				}
				if _, err := c.Write(buf); err != nil {
					return
				}
			}
		}()
	}
}

// close stops accepting; connections end when their clients close.
func (s *echoServer) close() {
	_ = s.ln.Close()
	s.wg.Wait()
}

// dialFrom connects from inside pod a's namespace.
func dialFrom(a pod, addr string, timeout time.Duration) (net.Conn, error) {
	src, err := ns.GetNS(a.NetNS)
	if err != nil {
		return nil, fmt.Errorf("open netns: %w", err)
	}
	defer src.Close()
	var c net.Conn
	err = src.Do(func(ns.NetNS) error {
		var err error
		c, err = net.DialTimeout("tcp4", addr, timeout)
		return err
	})
	return c, err
}

// pingPong measures round-trip times of size-byte messages from pod A to pod B.
func pingPong(ctx context.Context, pair podPair, size, count int, limit time.Duration) (*RRRun, error) {
	srv, err := startEcho(pair.B, size)
	if err != nil {
		return nil, err
	}
	defer srv.close()
	c, err := dialFrom(pair.A, srv.addr(), 3*time.Second)
	if err != nil {
		return nil, fmt.Errorf("dial echo: %w", err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(limit + 5*time.Second)); err != nil {
		return nil, fmt.Errorf("set deadline: %w", err)
	}
	msg := make([]byte, size)
	buf := make([]byte, size)
	rtt := make([]time.Duration, 0, count)
	const warmup = 50
	start := time.Now()
	for i := 0; i < count+warmup; i++ {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if i >= warmup && time.Since(start) > limit {
			break
		}
		t0 := time.Now()
		if _, err := c.Write(msg); err != nil {
			return nil, fmt.Errorf("write: %w", err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			return nil, fmt.Errorf("read: %w", err)
		}
		if i >= warmup {
			rtt = append(rtt, time.Since(t0))
		}
	}
	if len(rtt) == 0 {
		return nil, errors.New("no round trip completed")
	}
	us := durationsMicros(rtt)
	sp, _ := spreadOf(us)
	return &RRRun{
		Size: size, Count: len(rtt), Seconds: time.Since(start).Seconds(),
		P50us: quantile(us, 0.5), P90us: quantile(us, 0.9), P99us: quantile(us, 0.99),
		MinUs: sp.Min, MaxUs: sp.Max,
	}, nil
}

// connectRate opens and closes TCP connections from pod A to pod B one after another.
func connectRate(ctx context.Context, pair podPair, count int, limit time.Duration) (*ConnectRun, error) {
	srv, err := startEcho(pair.B, 1)
	if err != nil {
		return nil, err
	}
	defer srv.close()
	src, err := ns.GetNS(pair.A.NetNS)
	if err != nil {
		return nil, fmt.Errorf("open netns: %w", err)
	}
	defer src.Close()
	n := 0
	start := time.Now()
	err = src.Do(func(ns.NetNS) error {
		for n < count && time.Since(start) < limit && ctx.Err() == nil {
			c, err := net.DialTimeout("tcp4", srv.addr(), time.Second)
			if err != nil {
				return fmt.Errorf("connect %d: %w", n, err)
			}
			_ = c.Close()
			n++
		}
		return ctx.Err()
	})
	elapsed := time.Since(start)
	if err != nil {
		return nil, err
	}
	return &ConnectRun{Count: n, Seconds: elapsed.Seconds(), PerSecond: float64(n) / elapsed.Seconds()}, nil
}
