package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sync"
	"time"
)

// nbTrace follows the ACL table of OVN NB (ovsdb-client monitor) and records when each
// policy's ACL row was inserted and deleted: the cluster role's side of a measurement.
type nbTrace struct {
	cmd  *exec.Cmd
	done chan struct{}

	mu       sync.Mutex
	inserted map[string]time.Time
	deleted  map[string]time.Time
}

var (
	policyRe = regexp.MustCompile(benchNS + `/([A-Za-z0-9-]+)`)
	insertRe = regexp.MustCompile(`\binsert\b`)
	deleteRe = regexp.MustCompile(`\bdelete\b`)
)

func (e *env) traceNB(ctx context.Context) (*nbTrace, error) {
	cmd := exec.CommandContext(ctx, "ovsdb-client", "monitor", e.cl.NBDB, "OVN_Northbound", "ACL", "external_ids", "--format=csv")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	t := &nbTrace{cmd: cmd, done: make(chan struct{}), inserted: map[string]time.Time{}, deleted: map[string]time.Time{}}
	go func() {
		defer close(t.done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			now, line := time.Now(), sc.Text()
			m := policyRe.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			var into map[string]time.Time
			switch {
			case insertRe.MatchString(line):
				into = t.inserted
			case deleteRe.MatchString(line):
				into = t.deleted
			default:
				continue
			}
			t.mu.Lock()
			if _, ok := into[m[1]]; !ok {
				into[m[1]] = now
			}
			t.mu.Unlock()
		}
	}()
	return t, nil
}

func (t *nbTrace) stop() {
	_ = t.cmd.Process.Kill()
	<-t.done
	_ = t.cmd.Wait()
}

// at returns when the policy's ACL was inserted (or deleted).
func (t *nbTrace) at(name string, deleted bool) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.inserted
	if deleted {
		m = t.deleted
	}
	v, ok := m[name]
	return v, ok
}

// fastPathLogRe matches netpol.FastPathReconciler's "fast path" line (node role, -v 1):
// a pod's fast-path state as written, on or off and its isolation flags.
var fastPathLogRe = regexp.MustCompile(`time=(\S+) .*msg="fast path" .*pod=(\S+) on=(true|false) ingressIsolated=(true|false) egressIsolated=(true|false)`)

// fpEvent is one change of a pod's fast-path state.
type fpEvent struct {
	at                  time.Time
	on, ingress, egress bool
}

// fastPathEvents reads the node roles' logs: pod → the changes of its fast-path state.
func (e *env) fastPathEvents() (map[string][]fpEvent, error) {
	out := map[string][]fpEvent{}
	for _, n := range e.nodes {
		f, err := os.Open(n.log)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			m := fastPathLogRe.FindStringSubmatch(sc.Text())
			if m == nil {
				continue
			}
			at, err := time.Parse(time.RFC3339Nano, m[1])
			if err != nil {
				continue
			}
			out[m[2]] = append(out[m[2]], fpEvent{at: at, on: m[3] == "true", ingress: m[4] == "true", egress: m[5] == "true"})
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("read %s: %w", n.log, err)
		}
	}
	return out, nil
}

// firstIngress is how long after t0 the node first wrote the pod's ingress isolation as
// isolated (a policy now selects it; the fast path hands its denied traffic to OVS) or
// as free.
func firstIngress(ev []fpEvent, t0 time.Time, isolated bool) (time.Duration, bool) {
	for _, x := range ev {
		if x.on && x.ingress == isolated && !x.at.Before(t0) {
			return x.at.Sub(t0), true
		}
	}
	return 0, false
}
