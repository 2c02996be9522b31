package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
)

// stream sends one small numbered UDP datagram every interval from a pod to a target's
// echo port and records which were answered. The instant a path closed is the send time
// of the first datagram after the last answered one; the instant it opened, the send time
// of the first answered datagram. Its resolution is the interval.
//
// A flow stream sends every datagram from one socket: one long-running flow, which shows
// what becomes of a flow that was running when the policy came. A fresh stream sends each
// datagram from a socket of its own (a new source port): each is a new flow, which is
// what NetworkPolicy governs (it leaves running connections to the implementation).
type stream struct {
	c     net.Conn // flow streams
	fresh bool
	done  chan struct{}
	wg    sync.WaitGroup

	mu       sync.Mutex
	sent     []time.Time
	answered []bool
}

// maxDatagrams bounds a stream (at 10 ms: 2 minutes).
const maxDatagrams = 12000

// freshWait is how long a fresh stream's socket waits for its answer.
const freshWait = time.Second

func openStream(from *bpod, to netip.Addr, interval time.Duration, fresh bool) (*stream, error) {
	addr := netip.AddrPortFrom(to, echoPort).String()
	s := &stream{fresh: fresh, done: make(chan struct{})}
	var dial func() (net.Conn, error)
	if fresh {
		n, err := ns.GetNS(from.netns)
		if err != nil {
			return nil, err
		}
		s.wg.Go(func() { <-s.done; n.Close() })
		dial = func() (c net.Conn, err error) {
			err = n.Do(func(ns.NetNS) error {
				c, err = net.DialTimeout("udp4", addr, time.Second)
				return err
			})
			return c, err
		}
	} else {
		if err := inNS(from.netns, func() error {
			var err error
			s.c, err = net.DialTimeout("udp4", addr, time.Second)
			return err
		}); err != nil {
			return nil, err
		}
		s.wg.Go(func() { s.receive(s.c, 0, false) })
	}
	s.wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		var b [4]byte
		for range maxDatagrams {
			s.mu.Lock()
			seq := len(s.sent)
			s.sent = append(s.sent, time.Now())
			s.answered = append(s.answered, false)
			s.mu.Unlock()
			binary.BigEndian.PutUint32(b[:], uint32(seq))
			c := s.c
			if fresh {
				var err error
				if c, err = dial(); err != nil {
					c = nil // counts as unanswered
				}
			}
			if c != nil {
				_, _ = c.Write(b[:]) // a denied datagram may come back as an error; it counts as unanswered
				if fresh {
					s.wg.Go(func() { s.receive(c, seq, true) })
				}
			}
			select {
			case <-s.done:
				return
			case <-t.C:
			}
		}
	})
	return s, nil
}

// receive records the answers read from c; with once (a fresh stream's socket) it reads
// one answer to datagram seq, waiting at most freshWait, and closes c.
func (s *stream) receive(c net.Conn, seq int, once bool) {
	buf := make([]byte, 64)
	if once {
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(freshWait))
		if n, err := c.Read(buf); err == nil && n >= 4 && int(binary.BigEndian.Uint32(buf[:4])) == seq {
			s.mu.Lock()
			s.answered[seq] = true
			s.mu.Unlock()
		}
		return
	}
	for {
		select {
		case <-s.done:
			return
		default:
		}
		_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, err := c.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(5 * time.Millisecond) // ECONNREFUSED and the like: keep listening
			continue
		}
		if n < 4 {
			continue
		}
		seq := int(binary.BigEndian.Uint32(buf[:4]))
		s.mu.Lock()
		if seq < len(s.answered) {
			s.answered[seq] = true
		}
		s.mu.Unlock()
	}
}

func (s *stream) close() {
	close(s.done)
	if s.c != nil {
		_ = s.c.Close()
	}
	s.wg.Wait()
}

// answeredAny reports whether any datagram got its answer.
func (s *stream) answeredAny() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.answered {
		if a {
			return true
		}
	}
	return false
}

// closedAt: the send time of the first datagram after the last answered one, once no
// answer has come for quiet since then; ok is false while that does not hold yet.
func (s *stream) closedAt(quiet time.Duration) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	last := -1
	for i := len(s.answered) - 1; i >= 0; i-- {
		if s.answered[i] {
			last = i
			break
		}
	}
	if last+1 >= len(s.sent) || time.Since(s.sent[last+1]) < quiet {
		return time.Time{}, false
	}
	return s.sent[last+1], true
}

// openedAt: the send time of the first answered datagram sent at or after since.
func (s *stream) openedAt(since time.Time) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, t := range s.sent {
		if !t.Before(since) && s.answered[i] {
			return t, true
		}
	}
	return time.Time{}, false
}

// answersAfter describes the answers to datagrams sent after t0: how many, and when the
// last one was sent (relative to t0).
func (s *stream) answersAfter(t0 time.Time) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, sent := 0, 0
	var last time.Duration
	for i, t := range s.sent {
		if t.Before(t0) {
			continue
		}
		sent++
		if s.answered[i] {
			n++
			last = t.Sub(t0)
		}
	}
	return fmt.Sprintf("%d of %d answered, the last sent at +%s", n, sent, last.Round(time.Millisecond))
}

// pair is the probes of one target: from the prober on its node (the fast path until a
// policy selects the target) and from the prober on the other node (OVS); with fresh
// probes, also a flow from the prober on its node, running since before the change.
type pair struct{ same, cross, flow *stream }

func openPair(same, cross *bpod, to netip.Addr, interval time.Duration, fresh bool) (*pair, error) {
	a, err := openStream(same, to, interval, fresh)
	if err != nil {
		return nil, err
	}
	b, err := openStream(cross, to, interval, fresh)
	if err != nil {
		a.close()
		return nil, err
	}
	p := &pair{same: a, cross: b}
	if fresh {
		if p.flow, err = openStream(same, to, interval, false); err != nil {
			p.close()
			return nil, err
		}
	}
	return p, nil
}

func (p *pair) close() {
	for _, s := range []*stream{p.same, p.cross, p.flow} {
		if s != nil {
			s.close()
		}
	}
}

// flowAnsweredSince reports whether the running flow got an answer to a datagram sent
// at or after t (false without one).
func (p *pair) flowAnsweredSince(t time.Time) bool {
	if p.flow == nil {
		return false
	}
	_, ok := p.flow.openedAt(t)
	return ok
}

// waitAnswered waits until both probes have been answered (the target is reachable).
func (p *pair) waitAnswered(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for !p.same.answeredAny() || !p.cross.answeredAny() || p.flow != nil && !p.flow.answeredAny() {
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer within %s (same node: %v, cross node: %v)", limit, p.same.answeredAny(), p.cross.answeredAny())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// waitClosed returns how long after t0 each probe stopped getting answers.
func (p *pair) waitClosed(t0 time.Time, quiet, limit time.Duration) (same, cross time.Duration, err error) {
	deadline := t0.Add(limit)
	for {
		a, okA := p.same.closedAt(quiet)
		b, okB := p.cross.closedAt(quiet)
		if okA && okB {
			return max(0, a.Sub(t0)), max(0, b.Sub(t0)), nil
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("still answered after %s (same node: %s; cross node: %s)", limit,
				p.same.answersAfter(t0), p.cross.answersAfter(t0))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitOpened returns how long after t0 each probe got its first answer.
func (p *pair) waitOpened(t0 time.Time, limit time.Duration) (same, cross time.Duration, err error) {
	deadline := t0.Add(limit)
	for {
		a, okA := p.same.openedAt(t0)
		b, okB := p.cross.openedAt(t0)
		if okA && okB {
			return a.Sub(t0), b.Sub(t0), nil
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("not answered within %s (same node: %v, cross node: %v)", limit, okA, okB)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
