package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The throughput phase: fast-path TCP throughput with policies selecting the benchmark
// pods, against the same without. Two pairs of pods on node 0: the governed pair, which
// T policies select (each admitting the iperf3 traffic between them), and the free pair,
// which none selects. Every round runs iperf3 on both pairs, 1 stream then 4, the pairs'
// order alternating by round, so the two are measured side by side under the same
// machine noise; a few rounds before the policies exist show what separates the pairs
// alone. Around each client run the node's datapath counters are read: with nothing
// else sending on the node, their deltas are the pair's packets, and say which path
// they took.

// tputPair is a client and a server pod.
type tputPair struct{ client, server *bpod }

// tputRun is one iperf3 client run.
type tputRun struct {
	pair     string // tputGoverned or tputFree
	with     bool   // the throughput policies present
	round    int
	streams  int
	res      iperfResult
	counters map[string]int64 // node 0's datapath counters over the client's run
}

var tputStreams = []int{1, 4}

// addTputPods adds the two pairs on node 0.
func (e *env) addTputPods(ctx context.Context) (map[string]tputPair, error) {
	out := map[string]tputPair{}
	for _, name := range []string{tputGoverned, tputFree} {
		var p tputPair
		var err error
		l := map[string]string{labelTput: name}
		if p.client, err = e.addPod(ctx, "tput-"+name+"-client", 0, l, false); err != nil {
			return nil, err
		}
		if p.server, err = e.addPod(ctx, "tput-"+name+"-server", 0, l, false); err != nil {
			return nil, err
		}
		out[name] = p
	}
	return out, nil
}

func (e *env) phaseTput(ctx context.Context, o opts, pairs map[string]tputPair) error {
	var runs []tputRun
	round := func(r int, with bool) error {
		order := []string{tputGoverned, tputFree}
		if r%2 == 1 {
			order[0], order[1] = order[1], order[0]
		}
		for _, streams := range tputStreams {
			for _, name := range order {
				p := pairs[name]
				var before, delta map[string]int64
				res, err := iperf(ctx, p.client, p.server, streams, o.tputDuration, func(first bool) error {
					c, err := e.datapathCounters(0)
					if err != nil {
						return fmt.Errorf("node 0 datapath counters: %w", err)
					}
					if first {
						before = c
					} else {
						delta = subCounters(c, before)
					}
					return nil
				})
				if err != nil {
					return fmt.Errorf("iperf3, %s pair, %d streams: %w", name, streams, err)
				}
				runs = append(runs, tputRun{pair: name, with: with, round: r, streams: streams, res: res, counters: delta})
			}
		}
		return ctx.Err()
	}
	for r := range o.tputBefore {
		progress(fmt.Sprintf("throughput: round %d/%d before the policies", r+1, o.tputBefore))
		if err := round(r, false); err != nil {
			return err
		}
	}
	created, inNB, isolated, err := e.createTputPolicies(ctx, o, pairs[tputGoverned])
	if err != nil {
		return err
	}
	settle(ctx, 3*time.Second)
	for r := range o.tputRounds {
		progress(fmt.Sprintf("throughput: round %d/%d with %d policies", r+1, o.tputRounds, o.tputPolicies))
		if err := round(r, true); err != nil {
			return err
		}
	}
	printTput(o, runs, created, inNB, isolated)
	return e.deleteTputPolicies(ctx, o)
}

// createTputPolicies creates the throughput policies at once and waits until OVN NB holds
// every one and the node has written the governed pods' isolation into the fast path.
func (e *env) createTputPolicies(ctx context.Context, o opts, gov tputPair) (created, inNB, isolated time.Duration, err error) {
	progress(fmt.Sprintf("throughput: creating %d policies selecting the governed pair", o.tputPolicies))
	start := time.Now()
	if err := e.eachTputPolicy(ctx, o, func(ctx context.Context, j int) error {
		return e.api.Client.Create(ctx, tputPolicy(fmt.Sprintf("tput-%d", j), group(j%o.pods)))
	}); err != nil {
		return 0, 0, 0, fmt.Errorf("create throughput policies: %w", err)
	}
	created = time.Since(start)
	var wg sync.WaitGroup
	var nbErr, fpErr error
	wg.Go(func() {
		_, nbErr = e.waitPolicies(ctx, o.tputPolicies, 2*time.Minute)
		inNB = time.Since(start)
	})
	wg.Go(func() {
		fpErr = e.waitIsolated(ctx, []string{gov.client.name, gov.server.name}, 2*time.Minute)
		isolated = time.Since(start)
	})
	wg.Wait()
	if nbErr != nil {
		return 0, 0, 0, nbErr
	}
	return created, inNB, isolated, fpErr
}

// deleteTputPolicies deletes them and waits until NB holds no policy's ACL.
func (e *env) deleteTputPolicies(ctx context.Context, o opts) error {
	progress("throughput: deleting the policies")
	if err := e.eachTputPolicy(ctx, o, func(ctx context.Context, j int) error {
		return e.api.Client.Delete(ctx, tputPolicy(fmt.Sprintf("tput-%d", j), group(j%o.pods)))
	}); err != nil {
		return fmt.Errorf("delete throughput policies: %w", err)
	}
	if _, err := e.waitPolicies(ctx, 0, 2*time.Minute); err != nil {
		return err
	}
	settle(ctx, 3*time.Second)
	return nil
}

// eachTputPolicy calls fn for every throughput policy, o.parallel at a time.
func (e *env) eachTputPolicy(ctx context.Context, o opts, fn func(context.Context, int) error) error {
	sem := make(chan struct{}, o.parallel)
	var wg sync.WaitGroup
	var failed atomic.Value
	for j := range o.tputPolicies {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if failed.Load() != nil || ctx.Err() != nil {
				return
			}
			if err := fn(ctx, j); err != nil {
				failed.CompareAndSwap(nil, err)
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		return err
	}
	return ctx.Err()
}

// waitIsolated waits until the node roles have logged every pod as on the fast path with
// its ingress and egress isolated.
func (e *env) waitIsolated(ctx context.Context, pods []string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		ev, err := e.fastPathEvents()
		if err != nil {
			return err
		}
		done := true
		for _, p := range pods {
			x := ev[benchNS+"/"+p]
			if len(x) == 0 || !x[len(x)-1].on || !x[len(x)-1].ingress || !x[len(x)-1].egress {
				done = false
			}
		}
		if done {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%v not isolated in the fast path within %s", pods, limit)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func subCounters(after, before map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

func printTput(o opts, runs []tputRun, created, inNB, isolated time.Duration) {
	fmt.Printf("Fast-path TCP throughput, node 0: the governed pair (selected by %d policies, each admitting its iperf3 traffic, ingress and egress) against the free pair (selected by none)\n", o.tputPolicies)
	fmt.Printf("iperf3 -t %d, %d rounds before the policies, %d with them; each round runs both pairs side by side, their order alternating\n",
		int(o.tputDuration.Seconds()), o.tputBefore, o.tputRounds)
	fmt.Printf("%d policies created at once: API Creates %s, all in OVN NB after %s, governed pods isolated in the fast path after %s\n",
		o.tputPolicies, created.Round(10*time.Millisecond), inNB.Round(10*time.Millisecond), isolated.Round(10*time.Millisecond))
	fmt.Printf("%-30s %24s %24s %16s %18s\n", "Gbit/s: median (min–max)", "governed", "free", "governed/free", "per round")
	for _, streams := range tputStreams {
		for _, with := range []bool{false, true} {
			gov, free := pick(runs, tputGoverned, with, streams), pick(runs, tputFree, with, streams)
			if len(gov) == 0 {
				continue
			}
			when := "before"
			if with {
				when = "with"
			}
			var ratios []float64
			for i := range min(len(gov), len(free)) {
				ratios = append(ratios, gov[i].res.gbps/free[i].res.gbps)
			}
			g, f, r := gbps(gov), gbps(free), summary(ratios)
			fmt.Printf("%-30s %24s %24s %16.3f %18s\n", fmt.Sprintf("TCP %d stream(s), %s", streams, when),
				g.String(), f.String(), g.med/f.med, fmt.Sprintf("%.3f–%.3f", r.lo, r.hi))
		}
	}
	fmt.Printf("\nnode 0 datapath counters over the client runs (packets as from_pod sees them: GSO aggregates, both directions)\n")
	fmt.Printf("%-30s %14s %14s %14s %12s  %s\n", "", "redirect_fast", "to_ovs_policy", "other to_ovs", "fast path", "other to_ovs by reason")
	for _, with := range []bool{false, true} {
		for _, name := range []string{tputGoverned, tputFree} {
			sum := map[string]int64{}
			for _, r := range runs {
				if r.pair == name && r.with == with {
					for k, v := range r.counters {
						sum[k] += v
					}
				}
			}
			if len(sum) == 0 {
				continue
			}
			var other int64
			var reasons []string
			for k, v := range sum {
				if strings.HasPrefix(k, "to_ovs_") && k != "to_ovs_policy" {
					other += v
					reasons = append(reasons, fmt.Sprintf("%s=%d", k, v))
				}
			}
			sort.Strings(reasons)
			fast := sum["redirect_fast"]
			frac := 100 * float64(fast) / float64(max(1, fast+sum["to_ovs_policy"]+other))
			when := "before"
			if with {
				when = "with"
			}
			fmt.Printf("%-30s %14d %14d %14d %11.3f%%  %s\n", name+" pair, "+when, fast, sum["to_ovs_policy"], other, frac, strings.Join(reasons, " "))
		}
	}
	fmt.Println()
}

func pick(runs []tputRun, pair string, with bool, streams int) []tputRun {
	var out []tputRun
	for _, r := range runs {
		if r.pair == pair && r.with == with && r.streams == streams {
			out = append(out, r)
		}
	}
	return out
}

type stats struct {
	med, lo, hi float64
	n           int
}

func (s stats) String() string {
	return fmt.Sprintf("%.2f (%.2f–%.2f) n=%d", s.med, s.lo, s.hi, s.n)
}

func gbps(runs []tputRun) stats {
	var x []float64
	for _, r := range runs {
		x = append(x, r.res.gbps)
	}
	return summary(x)
}

// summary is the median (of an even count: the mean of the middle two), min and max.
func summary(x []float64) stats {
	if len(x) == 0 {
		return stats{}
	}
	x = append([]float64(nil), x...)
	sort.Float64s(x)
	n := len(x)
	med := x[n/2]
	if n%2 == 0 {
		med = (x[n/2-1] + x[n/2]) / 2
	}
	return stats{med: med, lo: x[0], hi: x[n-1], n: n}
}
