package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Probes: ping, a TCP connect to the pod's banner, iperf3.

// probe is one row of the table.
type probe struct {
	kind     string // ping, tcp, iperf3
	from, to *pod
	want     *pod   // the pod expected to answer; nil: nothing may answer
	outcome  string // what happened
	reached  bool
	ok       bool // outcome as expected
}

func (d *demo) probes(ctx context.Context) error {
	section("4a. Inside each VPN", "pods of one VPN reach each other on the same node (eBPF fast path) and across nodes (OVN over Geneve)")
	t0 := time.Now()
	if err := d.warmUp(ctx); err != nil {
		return err
	}
	say("warm-up (ARP, tunnel flows) done in %s", time.Since(t0).Round(10*time.Millisecond))
	a1, a2, a3, b1, b2 := d.pod("a1"), d.pod("a2"), d.pod("a3"), d.pod("b1"), d.pod("b2")
	inside := []*probe{
		{kind: "ping", from: a1, to: a3, want: a3},
		{kind: "ping", from: a1, to: a2, want: a2},
		{kind: "tcp", from: a1, to: a3, want: a3},
		{kind: "tcp", from: a1, to: a2, want: a2},
		{kind: "ping", from: b1, to: b2, want: b2},
		{kind: "tcp", from: b2, to: b1, want: b1},
	}
	for _, p := range inside {
		d.runProbe(ctx, p)
	}
	before, err := d.counters(ctx, a1.node)
	if err != nil {
		return err
	}
	same := &probe{kind: "iperf3", from: a1, to: a3, want: a3}
	d.iperf(ctx, same)
	after, err := d.counters(ctx, a1.node)
	if err != nil {
		return err
	}
	same.outcome += fmt.Sprintf("; fast path +%d pkts", after["redirect_fast"]-before["redirect_fast"])
	cross := &probe{kind: "iperf3", from: a1, to: a2, want: a2}
	d.iperf(ctx, cross)
	inside = append(inside, same, cross)
	d.printProbes(inside)

	section("4b. Across VPNs", "no path exists between VPNs: probes time out (not refused); where the other tenant's address also exists in the prober's own VPN (overlapping CIDRs), the prober's own pod answers, never the other tenant's")
	var across []*probe
	for _, pair := range [][2]*pod{{a1, b1}, {a3, b2}, {b2, a2}, {b2, a3}, {b1, a3}} {
		want := d.holder(pair[0].vpn, pair[1].ip)
		across = append(across, &probe{kind: "ping", from: pair[0], to: pair[1], want: want},
			&probe{kind: "tcp", from: pair[0], to: pair[1], want: want})
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for _, p := range across {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			d.runProbe(ctx, p)
		})
	}
	wg.Wait()
	d.printProbes(across)
	return ctx.Err()
}

func (d *demo) pod(name string) *pod {
	for _, p := range d.pods {
		if p.name == name {
			return p
		}
	}
	panic("no pod " + name)
}

// holder is the pod of vpn that has address ip, or nil.
func (d *demo) holder(vpn string, ip netip.Addr) *pod {
	for _, p := range d.pods {
		if p.vpn == vpn && p.ip == ip {
			return p
		}
	}
	return nil
}

// warmUp pings every same-VPN pair until it answers (20 s): the first packets across a
// new tunnel may be lost while ovn-controller installs flows.
func (d *demo) warmUp(ctx context.Context) error {
	for _, a := range d.pods {
		for _, b := range d.pods {
			if a == b || a.vpn != b.vpn {
				continue
			}
			deadline := time.Now().Add(20 * time.Second)
			for {
				if n, _ := ping(ctx, a, b.ip, 1); n > 0 {
					break
				}
				if err := ctx.Err(); err != nil {
					return err
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("%s cannot ping %s (%s) within 20s", a.name, b.name, b.ip)
				}
			}
		}
	}
	return nil
}

var rttRe = regexp.MustCompile(`rtt min/avg/max/mdev = [0-9.]+/([0-9.]+)/`)

// ping sends count echo requests and returns how many replies came.
func ping(ctx context.Context, p *pod, dst netip.Addr, count int) (int, string) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(count+3)*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, "nsenter", "--net="+p.netnsPath(), "ping", "-c", strconv.Itoa(count),
		"-i", "0.2", "-W", "1", dst.String()).CombinedOutput()
	m := regexp.MustCompile(`(\d+) received`).FindStringSubmatch(string(out))
	if m == nil {
		return 0, string(out)
	}
	n, _ := strconv.Atoi(m[1])
	rtt := ""
	if r := rttRe.FindStringSubmatch(string(out)); r != nil {
		rtt = r[1] + " ms"
	}
	return n, rtt
}

func (d *demo) runProbe(ctx context.Context, p *probe) {
	switch p.kind {
	case "ping":
		n, rtt := ping(ctx, p.from, p.to.ip, 3)
		p.reached = n > 0
		if p.reached {
			p.outcome = fmt.Sprintf("%d/3 replies, avg %s", n, rtt)
		} else {
			p.outcome = "no reply"
		}
		p.ok = p.reached == (p.want != nil)
	case "tcp":
		name, err := banner(p.from, p.to.ip, 2*time.Second)
		var ne net.Error
		switch {
		case err == nil:
			p.reached = true
			p.outcome = "connected: " + name + " answered"
			p.ok = p.want != nil && name == p.want.name
		case errors.As(err, &ne) && ne.Timeout():
			p.outcome = "connect timed out"
			p.ok = p.want == nil
		case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
			p.outcome = "no route/neighbour"
			p.ok = p.want == nil
		default:
			p.outcome = err.Error()
		}
	}
}

// banner connects to dst's banner port from p and returns the name it reads.
func banner(p *pod, dst netip.Addr, timeout time.Duration) (string, error) {
	return bannerIn(p.netnsPath(), dst, timeout)
}

var bitrateRe = regexp.MustCompile(`([0-9.]+ [KMG]bits/sec)\s+(\d+)?\s*receiver`)

// iperf runs a 3-second iperf3 stream from p.from to p.to.
func (d *demo) iperf(ctx context.Context, p *probe) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	srv := exec.CommandContext(ctx, "nsenter", "--net="+p.to.netnsPath(), "iperf3", "-s", "-1", "-B", p.to.ip.String())
	srv.SysProcAttr = ownGroup()
	if err := srv.Start(); err != nil {
		p.outcome = err.Error()
		return
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	var out []byte
	var err error
	for range 20 { // the server needs a moment to listen
		out, err = exec.CommandContext(ctx, "nsenter", "--net="+p.from.netnsPath(), "iperf3", "-c", p.to.ip.String(), "-t", "3").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "refused") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	m := bitrateRe.FindStringSubmatch(string(out))
	if err != nil || m == nil {
		p.outcome = fmt.Sprintf("failed: %v %s", err, lastLine(string(out)))
		return
	}
	p.reached, p.ok = true, true
	p.outcome = "3 s at " + m[1]
}

func lastLine(s string) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return l[len(l)-1]
}

func (d *demo) printProbes(ps []*probe) {
	var rows [][]string
	for _, p := range ps {
		want := "nothing answers (timeout)"
		if p.want != nil {
			want = p.want.name + " answers"
			if p.want != p.to {
				want += fmt.Sprintf(" (%s holds %s in %s)", p.want.name, p.to.ip, p.from.vpn)
			}
		}
		where := "same node"
		if p.from.node != p.to.node {
			where = "cross-node"
		}
		rows = append(rows, []string{p.kind, p.from.name + " (" + p.from.vpn + ")",
			fmt.Sprintf("%s %s (%s, %s)", p.to.name, p.to.ip, p.to.vpn, where),
			want, mark(p.reached) + " " + p.outcome, yes(p.ok)})
		if !p.ok {
			d.fail("%s %s → %s: want %s, got %s", p.kind, p.from.name, p.to.name, want, p.outcome)
		}
	}
	table([]string{"probe", "from", "to", "expected", "outcome", "as expected"}, rows)
}

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO ✗"
}
