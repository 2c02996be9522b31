// Command benchpolicy measures NetworkPolicy realisation (issue 13) against a real API
// server, a two-node OVS/OVN cluster, the cluster role (netpol.Reconciler, OVN ACLs) and
// a node role on each node (netpol.FastPathReconciler, the eBPF fast path), with pods
// through libcni. It prints figures; it asserts nothing.
//
//  0. First (unless -tput-rounds 0): fast-path TCP throughput between two pods of node 0
//     that T policies select, each admitting the iperf3 traffic between them, against two
//     pods of the same node that none selects, side by side in interleaved rounds, with
//     the node's datapath counters (which path the packets took); see tput.go.
//  1. P policies over N pods, created one after the other, each denying ingress to one
//     target pod: the time from Create to the first instant neither a probe from a pod on
//     the target's node (fast path until then) nor one from the other node (OVS) is
//     answered; then deleted one after the other: Delete → both answered again. By
//     default (-probe fresh) each probe datagram is a new flow (its own socket, a new
//     source port): NetworkPolicy governs new connections. A same-node flow running since
//     before the Create is watched beside them: is it still answered once new flows are
//     denied? (-probe flow: the probes are such running flows, as before.)
//  2. With B policies at once: the cluster role's RSS and OVN NB's size, before and after,
//     and how long until every policy is in NB.
//  3. At B policies, K more probed policies: Create → enforced again (one reconcile of a
//     VPN holding B policies is on that path).
//
// go run ./test/benchpolicy [-policies 100] [-pods 200] [-bulk 1000] [-tput-rounds 10]   (root; after make build)
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type opts struct {
	bin                         string
	pods, policies, bulk, extra int
	parallel                    int
	interval, quiet, limit      time.Duration
	skipReverse                 bool
	keep                        string

	tputRounds, tputBefore, tputPolicies int
	tputDuration                         time.Duration

	fresh bool // probes of new flows (a socket per datagram), not one running flow
}

func main() {
	o := opts{}
	flag.StringVar(&o.bin, "bin", "bin", "directory with sdncni and sdncni-controller")
	flag.IntVar(&o.pods, "pods", 200, "pods in the VPN (half on each node), besides the two probers")
	flag.IntVar(&o.policies, "policies", 100, "probed policies, created (then deleted) one after the other")
	flag.IntVar(&o.bulk, "bulk", 1000, "policies created at once for the RSS and NB figures (0: skip)")
	flag.IntVar(&o.extra, "probe-at-bulk", 10, "probed policies created on top of the bulk ones")
	flag.IntVar(&o.parallel, "parallel", 8, "concurrent pod ADDs and policy Creates")
	flag.DurationVar(&o.interval, "interval", 10*time.Millisecond, "probe datagram interval (the resolution)")
	flag.DurationVar(&o.quiet, "quiet", 700*time.Millisecond, "silence after which a probe counts as denied")
	flag.DurationVar(&o.limit, "limit", 20*time.Second, "bound of each measurement")
	flag.BoolVar(&o.skipReverse, "skip-reverse", false, "do not time the deletes")
	probe := flag.String("probe", "fresh", "what the realisation probes send: fresh (each datagram a new flow) or flow (one running flow per probe)")
	flag.StringVar(&o.keep, "keep-logs", "", "copy the controllers' logs into this directory before cleaning up")
	flag.IntVar(&o.tputRounds, "tput-rounds", 10, "throughput rounds with the policies (0: skip the throughput phase)")
	flag.IntVar(&o.tputBefore, "tput-before", 2, "throughput rounds before the policies exist")
	flag.IntVar(&o.tputPolicies, "tput-policies", 100, "policies selecting the governed pair")
	flag.DurationVar(&o.tputDuration, "tput-duration", 5*time.Second, "length of each iperf3 run (whole seconds)")
	flag.Parse()
	o.fresh = *probe == "fresh"
	if *probe != "fresh" && *probe != "flow" {
		fmt.Fprintln(os.Stderr, "benchpolicy: -probe is fresh or flow")
		os.Exit(2)
	}
	if o.pods < 4 || o.policies+o.extra > o.pods {
		fmt.Fprintln(os.Stderr, "benchpolicy: need 4 ≤ pods and policies + probe-at-bulk ≤ pods")
		os.Exit(2)
	}
	if o.tputRounds < 0 || o.tputRounds > 50 || o.tputBefore < 0 || o.tputBefore > 50 ||
		o.tputPolicies < 1 || o.tputPolicies > 5000 || o.tputDuration < time.Second || o.tputDuration > time.Minute {
		fmt.Fprintln(os.Stderr, "benchpolicy: need tput-rounds, tput-before in 0..50, tput-policies in 1..5000, tput-duration in 1s..1m")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "benchpolicy:", err)
		os.Exit(1)
	}
}

var started = time.Now()

func progress(msg string) {
	fmt.Fprintf(os.Stderr, "[%s] %s\n", time.Since(started).Round(time.Second), msg)
}

func run(ctx context.Context, o opts) error {
	bin, err := filepath.Abs(o.bin)
	if err != nil {
		return err
	}
	e, err := startEnv(ctx, bin)
	if err != nil {
		return err
	}
	defer e.stop(ctx)
	if o.keep != "" {
		defer e.keepLogs(o.keep)
	}

	// Pods: the two probers (no labels any policy selects), then pod i on node i mod 2.
	// The probed targets are pods 0..P-1 (phase 1) and the last K (phase 3); the bulk
	// policies select groups of the others only.
	start := time.Now()
	var probers [2]*bpod
	for i := range probers {
		if probers[i], err = e.addPod(ctx, fmt.Sprintf("prober-%d", i), i, map[string]string{"role": "prober"}, false); err != nil {
			return err
		}
	}
	pods := make([]*bpod, o.pods)
	var failed atomic.Value
	sem := make(chan struct{}, o.parallel)
	var wg sync.WaitGroup
	var up atomic.Int32
	for i := range pods {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if failed.Load() != nil || ctx.Err() != nil {
				return
			}
			probed := i < o.policies || i >= o.pods-o.extra
			p, err := e.addPod(ctx, fmt.Sprintf("pod-%d", i), i%2, podLabels(i), probed)
			if err != nil {
				failed.CompareAndSwap(nil, err)
				return
			}
			pods[i] = p
			if n := up.Add(1); n%50 == 0 {
				progress(fmt.Sprintf("pods up: %d/%d", n, o.pods))
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	podsUp := time.Since(start)
	fmt.Printf("sdncni NetworkPolicy benchmark: real API server, 2-node OVS/OVN cluster (netdev), VPN mode, fast path on, %d CPUs\n", cpus())
	fmt.Printf("%d pods (+2 probers) up in %s; one VPN, one namespace\n\n", o.pods, podsUp.Round(100*time.Millisecond))

	if o.tputRounds > 0 {
		pairs, err := e.addTputPods(ctx)
		if err != nil {
			return err
		}
		if err := e.phaseTput(ctx, o, pairs); err != nil {
			return err
		}
	}

	tr, err := e.traceNB(ctx)
	if err != nil {
		return err
	}
	defer tr.stop()
	fast0 := e.fastCounters()
	create, del, err := e.phase1(ctx, o, probers, pods)
	if err != nil {
		return err
	}
	fast1 := e.fastCounters()
	ev, err := e.fastPathEvents()
	if err != nil {
		return err
	}
	fmt.Printf("%-60s %8s %8s %8s %5s\n", "operation", "p50", "p99", "max", "n")
	name := fmt.Sprintf("create → denied, %d policies", o.policies)
	printRows(name, create)
	printComponents(name, create, tr, ev, false)
	if !o.skipReverse {
		name := fmt.Sprintf("delete → allowed, %d policies", o.policies)
		printRows(name, del)
		printComponents(name, del, tr, ev, true)
	}
	fmt.Printf("fast path redirects during phase 1: node 0 +%d, node 1 +%d (same-node probes before each policy)\n",
		fast1[0]-fast0[0], fast1[1]-fast0[1])

	if o.bulk == 0 {
		return nil
	}
	return e.phase2(ctx, o, probers, pods, tr)
}

// timings of one kind of measurement: same node, cross node, both (the later of the two).
type timings struct {
	same, cross, both []time.Duration
	failed            []string
	// flowKept names the targets whose same-node flow running since before the Create
	// was still answered once new flows were denied (fresh probes only); flows counts
	// the measurements that looked.
	flowKept []string
	flows    int
	// runs are the measurements' pod, policy and start, for the components.
	runs []run1
}

type run1 struct {
	pod, policy string
	t0          time.Time
}

func (t *timings) add(s, c time.Duration) {
	t.same, t.cross, t.both = append(t.same, s), append(t.cross, c), append(t.both, max(s, c))
}

// switchesSince lists the fast-path state changes of the pod the node logged after t0.
func (e *env) switchesSince(pod string, t0 time.Time) string {
	ev, err := e.fastPathEvents()
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, x := range ev[benchNS+"/"+pod] {
		if !x.at.Before(t0) {
			out = append(out, fmt.Sprintf("+%s on=%v in=%v eg=%v", x.at.Sub(t0).Round(time.Millisecond), x.on, x.ingress, x.egress))
		}
	}
	if len(out) > 12 {
		out = append(out[:12], fmt.Sprintf("… %d more", len(out)-12))
	}
	return "[" + strings.Join(out, ", ") + "]"
}

// keepLogs copies the controllers' logs into dir.
func (e *env) keepLogs(dir string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "keep logs:", err)
		return
	}
	for _, p := range append([]*proc{e.cluster}, e.nodes...) {
		if b, err := os.ReadFile(p.log); err == nil {
			_ = os.WriteFile(filepath.Join(dir, filepath.Base(p.log)), b, 0o644)
		}
	}
	fmt.Fprintln(os.Stderr, "controller logs kept in", dir)
}

// printComponents prints where the time went: the policy's ACL in NB (the cluster role:
// API watch, reconcile, NB transaction) and the target's ingress isolation written into
// its node's fast path (the node role's log; the target stays on the fast path, which
// from then on hands the probes to OVS). For deletes: the ACL gone, the isolation lifted.
func printComponents(name string, t timings, tr *nbTrace, ev map[string][]fpEvent, deleted bool) {
	var nb, fp []time.Duration
	for _, r := range t.runs {
		if at, ok := tr.at(r.policy, deleted); ok {
			nb = append(nb, max(0, at.Sub(r.t0)))
		}
		if d, ok := firstIngress(ev[benchNS+"/"+r.pod], r.t0, !deleted); ok {
			fp = append(fp, d)
		}
	}
	what := [2]string{"ACL in NB", "isolated in the fast path (node log)"}
	if deleted {
		what = [2]string{"ACL gone from NB", "isolation lifted in the fast path (node log)"}
	}
	printRow(name+": "+what[0], nb)
	printRow(name+": "+what[1], fp)
}

func printRows(name string, t timings) {
	printRow(name+": same node", t.same)
	printRow(name+": cross node", t.cross)
	printRow(name+": both paths", t.both)
	if t.flows > 0 {
		fmt.Printf("  same-node flow running since before the Create, still answered once new flows were denied: %d of %d %v\n",
			len(t.flowKept), t.flows, t.flowKept)
	}
	if len(t.failed) > 0 {
		fmt.Printf("  %d not within the bound:\n", len(t.failed))
		for _, f := range t.failed {
			fmt.Printf("    %s\n", f)
		}
	}
}

func printRow(name string, d []time.Duration) {
	if len(d) == 0 {
		fmt.Printf("%-60s %8s %8s %8s %5d\n", name, "–", "–", "–", 0)
		return
	}
	d = append([]time.Duration(nil), d...)
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	q := func(p float64) time.Duration { return d[min(len(d)-1, int(p*float64(len(d))))] }
	r := func(x time.Duration) string { return x.Round(time.Millisecond).String() }
	fmt.Printf("%-60s %8s %8s %8s %5d\n", name, r(q(0.50)), r(q(0.99)), r(d[len(d)-1]), len(d))
}

// measureCreate creates pol (selecting target) and times both probes closing.
func (e *env) measureCreate(ctx context.Context, o opts, probers [2]*bpod, target *bpod, policy string, create func() error, t *timings) error {
	pr, err := openPair(probers[target.node], probers[1-target.node], target.ip, o.interval, o.fresh)
	if err != nil {
		return err
	}
	defer pr.close()
	if err := pr.waitAnswered(10 * time.Second); err != nil {
		t.failed = append(t.failed, fmt.Sprintf("%s before the policy: %v", target.name, err))
		return create()
	}
	t0 := time.Now()
	if err := create(); err != nil {
		return err
	}
	t.runs = append(t.runs, run1{pod: target.name, policy: policy, t0: t0})
	s, c, err := pr.waitClosed(t0, o.quiet, o.limit)
	if err != nil {
		// Which path still delivers: the node's fast-path redirects over one second while
		// the probes go on (about 100/s if it is the fast path; nothing else runs now).
		// And whether a new flow (new source ports) is denied while the old one leaks.
		r0, _ := e.datapathCounter(target.node, "redirect_fast")
		fresh := "?"
		if fp, err := openPair(probers[target.node], probers[1-target.node], target.ip, o.interval, false); err == nil {
			t1 := time.Now()
			time.Sleep(1500 * time.Millisecond)
			fresh = fmt.Sprintf("same node: %s; cross node: %s", fp.same.answersAfter(t1), fp.cross.answersAfter(t1))
			fp.close()
		}
		r1, _ := e.datapathCounter(target.node, "redirect_fast")
		t.failed = append(t.failed, fmt.Sprintf("%s (node %d, %s): %v; then a new flow for 1.5s: %s; redirect_fast on its node +%d meanwhile; its fast path after the Create (node log): %s",
			target.name, target.node, target.ip, err, fresh, r1-r0, e.switchesSince(target.name, t0)))
		return ctx.Err()
	}
	t.add(s, c)
	if pr.flow != nil {
		// waitClosed returned at least quiet after the last answer to a new flow.
		t.flows++
		if pr.flowAnsweredSince(time.Now().Add(-o.quiet / 2)) {
			t.flowKept = append(t.flowKept, target.name)
		}
	}
	return ctx.Err()
}

// measureDelete deletes the policy and times both probes being answered again.
func (e *env) measureDelete(ctx context.Context, o opts, probers [2]*bpod, target *bpod, policy string, del func() error, t *timings) error {
	pr, err := openPair(probers[target.node], probers[1-target.node], target.ip, o.interval, o.fresh)
	if err != nil {
		return err
	}
	defer pr.close()
	t0 := time.Now()
	if err := del(); err != nil {
		return err
	}
	t.runs = append(t.runs, run1{pod: target.name, policy: policy, t0: t0})
	s, c, err := pr.waitOpened(t0, o.limit)
	if err != nil {
		t.failed = append(t.failed, fmt.Sprintf("%s: %v", target.name, err))
		return ctx.Err()
	}
	t.add(s, c)
	return ctx.Err()
}

// phase1 creates the P probed policies one after the other (they accumulate), then
// deletes them in reverse order.
func (e *env) phase1(ctx context.Context, o opts, probers [2]*bpod, pods []*bpod) (create, del timings, err error) {
	c := e.api.Client
	for i := range o.policies {
		if i%10 == 0 {
			progress(fmt.Sprintf("phase 1: policy %d/%d", i+1, o.policies))
		}
		pol := targetPolicy(fmt.Sprintf("p1-%d", i), group(i))
		if err := e.measureCreate(ctx, o, probers, pods[i], pol.Name, func() error { return c.Create(ctx, pol) }, &create); err != nil {
			return create, del, err
		}
	}
	if o.skipReverse {
		return create, del, nil
	}
	for i := o.policies - 1; i >= 0; i-- {
		if i%10 == 0 {
			progress(fmt.Sprintf("phase 1: deleting, %d left", i+1))
		}
		pol := targetPolicy(fmt.Sprintf("p1-%d", i), group(i))
		if err := e.measureDelete(ctx, o, probers, pods[i], pol.Name, func() error { return c.Delete(ctx, pol) }, &del); err != nil {
			return create, del, err
		}
	}
	return create, del, nil
}

// phase2 is the bulk: B policies at once, RSS and NB before and after, then K probed
// policies on top.
func (e *env) phase2(ctx context.Context, o opts, probers [2]*bpod, pods []*bpod, tr *nbTrace) error {
	c := e.api.Client
	if !o.skipReverse {
		// Every phase-1 policy is gone: wait for NB to say so.
		if _, err := e.waitPolicies(ctx, 0, time.Minute); err != nil {
			return err
		}
	}
	settle(ctx, 5*time.Second)
	before, err := e.nbSize()
	if err != nil {
		return err
	}
	rssBefore := e.cluster.rssMiB()
	groups := o.pods - o.extra
	progress(fmt.Sprintf("phase 2: creating %d policies", o.bulk))
	start := time.Now()
	sem := make(chan struct{}, o.parallel)
	var wg sync.WaitGroup
	var failed atomic.Value
	for j := range o.bulk {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if failed.Load() != nil || ctx.Err() != nil {
				return
			}
			if err := c.Create(ctx, targetPolicy(fmt.Sprintf("bulk-%d", j), group(j%groups))); err != nil {
				failed.CompareAndSwap(nil, err)
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		return fmt.Errorf("create bulk policies: %w", err)
	}
	created := time.Since(start)
	want := o.bulk
	if o.skipReverse {
		want += o.policies
	}
	inNB, err := e.waitPolicies(ctx, want, 10*time.Minute)
	if err != nil {
		return err
	}
	converged := time.Since(start)
	settle(ctx, 5*time.Second)
	after, err := e.nbSize()
	if err != nil {
		return err
	}
	rssAfter := e.cluster.rssMiB()
	compacted := e.compactNB()

	fmt.Printf("\n%d policies created at once (%d in parallel): API Creates took %s; every policy in OVN NB after %s\n",
		o.bulk, o.parallel, created.Round(10*time.Millisecond), converged.Round(10*time.Millisecond))
	fmt.Printf("%-40s %14s %14s\n", "", "0 policies", fmt.Sprintf("%d policies", inNB))
	fmt.Printf("%-40s %14.1f %14.1f\n", "cluster role RSS (VmRSS), MiB", rssBefore, rssAfter)
	fmt.Printf("%-40s %14d %14d\n", "NB ACL rows", before.acls, after.acls)
	fmt.Printf("%-40s %14d %14d\n", "NB Address_Set rows", before.sets, after.sets)
	fmt.Printf("%-40s %14d %14d\n", "addresses in all Address_Sets", before.addrs, after.addrs)
	fmt.Printf("%-40s %14.2f %14.2f\n", "NB database file, MiB", mib(before.file), mib(after.file))
	fmt.Printf("%-40s %14s %14.2f\n", "NB database file after compaction, MiB", "", mib(compacted))
	fmt.Printf("%-40s %14.2f %14.2f\n", "ovsdb-client dump OVN_Northbound, MiB", mib(before.dump), mib(after.dump))
	fmt.Printf("%-40s %14d %14d\n", "SB Logical_Flow rows", before.lflows, after.lflows)

	if o.extra == 0 {
		return nil
	}
	var at timings
	for k := range o.extra {
		i := o.pods - o.extra + k
		pol := targetPolicy(fmt.Sprintf("p3-%d", k), group(i))
		if err := e.measureCreate(ctx, o, probers, pods[i], pol.Name, func() error { return c.Create(ctx, pol) }, &at); err != nil {
			return err
		}
	}
	ev, err := e.fastPathEvents()
	if err != nil {
		return err
	}
	fmt.Printf("\n%-60s %8s %8s %8s %5s\n", "operation", "p50", "p99", "max", "n")
	name := fmt.Sprintf("create → denied, at %d policies", inNB)
	printRows(name, at)
	printComponents(name, at, tr, ev, false)
	return nil
}

func settle(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// waitPolicies waits until the NB ACLs name exactly want policies, and returns that count.
func (e *env) waitPolicies(ctx context.Context, want int, limit time.Duration) (int, error) {
	deadline := time.Now().Add(limit)
	got := -1
	for {
		out, err := e.nbctl("--bare", "--columns=external_ids", "list", "ACL")
		if err == nil {
			seen := map[string]bool{}
			for _, f := range strings.Fields(out) {
				if v, ok := strings.CutPrefix(f, "sdncni.io/policy="); ok {
					seen[v] = true
				}
			}
			got = len(seen)
			if got == want {
				return got, nil
			}
		}
		if time.Now().After(deadline) {
			return got, fmt.Errorf("NB ACLs name %d policies after %s, want %d (%v)", got, limit, want, err)
		}
		if ctx.Err() != nil {
			return got, ctx.Err()
		}
		time.Sleep(time.Second)
	}
}

type nbSize struct {
	acls, sets, addrs, lflows int
	file, dump                int64
}

func (e *env) nbFile() string {
	return strings.TrimSuffix(strings.TrimPrefix(e.cl.NBDB, "unix:"), ".sock") + ".db"
}

func (e *env) nbSize() (nbSize, error) {
	var s nbSize
	count := func(db, table string) (int, error) {
		tool := "ovn-nbctl"
		if db == e.cl.SBDB {
			tool = "ovn-sbctl"
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, tool, "--db="+db, "--timeout=50", "--bare", "--columns=_uuid", "list", table).Output()
		return len(strings.Fields(string(out))), err
	}
	var err error
	if s.acls, err = count(e.cl.NBDB, "ACL"); err != nil {
		return s, err
	}
	if s.sets, err = count(e.cl.NBDB, "Address_Set"); err != nil {
		return s, err
	}
	if s.lflows, err = count(e.cl.SBDB, "Logical_Flow"); err != nil {
		return s, err
	}
	out, err := e.nbctl("--bare", "--columns=addresses", "list", "Address_Set")
	if err != nil {
		return s, err
	}
	s.addrs = len(strings.Fields(out))
	if fi, err := os.Stat(e.nbFile()); err == nil {
		s.file = fi.Size()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dump, err := exec.CommandContext(ctx, "ovsdb-client", "dump", e.cl.NBDB, "OVN_Northbound").Output()
	if err != nil {
		return s, fmt.Errorf("ovsdb-client dump: %w", err)
	}
	s.dump = int64(len(dump))
	return s, nil
}

// compactNB compacts the NB database (its file holds every transaction since the last
// compaction) and returns the file's size after.
func (e *env) compactNB() int64 {
	ctl := strings.TrimSuffix(e.nbFile(), ".db") + ".ctl"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ovs-appctl", "-t", ctl, "ovsdb-server/compact").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "compact NB: %v: %s\n", err, out)
		return 0
	}
	fi, err := os.Stat(e.nbFile())
	if err != nil {
		return 0
	}
	return fi.Size()
}

// fastCounters reads redirect_fast of both nodes (0 where unreadable).
func (e *env) fastCounters() [2]int64 {
	var out [2]int64
	for i := range out {
		v, err := e.datapathCounter(i, "redirect_fast")
		if err != nil {
			fmt.Fprintf(os.Stderr, "node %d datapath counters: %v\n", i, err)
		}
		out[i] = v
	}
	return out
}

func cpus() int {
	out, _ := exec.Command("nproc").Output()
	n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return n
}
