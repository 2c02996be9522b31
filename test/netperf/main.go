package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// options are the command's flags.
type options struct {
	Duration     time.Duration `json:"duration"`
	Rounds       int           `json:"rounds"`
	Cases        []string      `json:"cases"`
	Len          string        `json:"iperf_len,omitempty"`
	MsgSize      int           `json:"msg_size"`
	UDPRate      string        `json:"udp_rate"`
	MTU          int           `json:"mtu"`
	RRCount      int           `json:"rr_count"`
	RRLimit      time.Duration `json:"rr_limit"`
	ConnectCount int           `json:"connect_count"`
	ConnectLimit time.Duration `json:"connect_limit"`
	AddLoop      int           `json:"add_loop"`
	AddLoopLimit time.Duration `json:"add_loop_limit"`
	// CrossNodeFast is auto, on or off: whether the sdncni controllers get the kernel
	// cross-node path's flags (auto: when the controller has them).
	CrossNodeFast string `json:"cross_node_fast"`
	// ControllerArgs are appended to every sdncni controller's command line.
	ControllerArgs []string `json:"controller_args,omitempty"`
	Quick          bool     `json:"quick"`
	Keep           bool     `json:"keep"`
	Out            string   `json:"out"`
	From           string   `json:"from,omitempty"`
	Repo           string   `json:"repo"`
}

func defaultOptions() *options {
	return &options{
		Duration: 5 * time.Second, Rounds: 5, Cases: allCases, MsgSize: 1, UDPRate: "1G", MTU: 1500,
		RRCount: 50000, RRLimit: 10 * time.Second, ConnectCount: 10000, ConnectLimit: 3 * time.Second,
		AddLoop: 10, AddLoopLimit: 60 * time.Second, CrossNodeFast: "auto",
	}
}

// applyQuick shrinks the run to a smoke test of well under two minutes, still interleaved.
func (o *options) applyQuick() {
	o.Rounds, o.Duration = 3, 2*time.Second
	o.RRCount, o.RRLimit = 10000, 2*time.Second
	o.ConnectCount, o.ConnectLimit = 2000, time.Second
	o.AddLoop, o.AddLoopLimit = 3, 20*time.Second
}

func (o *options) hasCase(name string) bool { return slices.Contains(o.Cases, name) }

func (o *options) validate() error {
	if o.Rounds < 3 {
		return fmt.Errorf("--rounds %d: at least 3 rounds are needed for a median and spread", o.Rounds)
	}
	if o.Duration < time.Second || o.Duration > 10*time.Minute {
		return fmt.Errorf("--duration %s: want 1s..10m", o.Duration)
	}
	if len(o.Cases) == 0 {
		return errors.New("--cases: none selected")
	}
	for _, c := range o.Cases {
		if !slices.Contains(allCases, c) {
			return fmt.Errorf("--cases: unknown case %q (have %s)", c, strings.Join(allCases, ","))
		}
	}
	if o.MsgSize < 1 || o.MsgSize > 1<<20 {
		return fmt.Errorf("--msg-size %d: want 1..1MiB", o.MsgSize)
	}
	if o.RRCount < 1 || o.ConnectCount < 1 {
		return errors.New("--rr-count and --connect-count must be positive")
	}
	if !slices.Contains([]string{"auto", "on", "off"}, o.CrossNodeFast) {
		return fmt.Errorf("--cross-node-fast %q: want auto, on or off", o.CrossNodeFast)
	}
	if o.Out == "" || o.Repo == "" {
		return errors.New("output and repository directories must be set")
	}
	return nil
}

// parseFlags reads the command line into options.
func parseFlags(args []string) (*options, error) {
	o := defaultOptions()
	fs := flag.NewFlagSet("netperf", flag.ContinueOnError)
	fs.DurationVar(&o.Duration, "duration", o.Duration, "length of each iperf3 run (whole seconds)")
	fs.IntVar(&o.Rounds, "rounds", o.Rounds, "rounds; each round runs every case once, in a rotating order (min 3)")
	cases := fs.String("cases", strings.Join(o.Cases, ","), "comma-separated cases: "+strings.Join(allCases, ","))
	fs.StringVar(&o.Len, "l", "", "iperf3 -l: read/write buffer length, e.g. 128K (default: iperf3's)")
	fs.IntVar(&o.MsgSize, "msg-size", o.MsgSize, "request/response message size in bytes")
	fs.StringVar(&o.UDPRate, "udp-rate", o.UDPRate, "UDP offered load (iperf3 -b)")
	fs.IntVar(&o.RRCount, "rr-count", o.RRCount, "request/response round trips per run")
	fs.IntVar(&o.ConnectCount, "connect-count", o.ConnectCount, "TCP connects per run (also bounded in time)")
	fs.IntVar(&o.AddLoop, "add-loop", o.AddLoop, "pod ADD/DEL iterations per plugin after the rounds")
	fs.StringVar(&o.Out, "out", "", "output directory (default test/netperf/out/<timestamp>)")
	fs.StringVar(&o.CrossNodeFast, "cross-node-fast", o.CrossNodeFast,
		"kernel cross-node fast path for the sdncni controllers: on, off, or auto (on when sdncni-controller has --cross-node-vxlan)")
	fs.Func("controller-arg", "append this argument to every sdncni controller's command line (repeatable), e.g. --controller-arg=--tunnel-tx-offload=on",
		func(s string) error {
			o.ControllerArgs = append(o.ControllerArgs, s)
			return nil
		})
	fs.BoolVar(&o.Quick, "quick", false, "smoke test under two minutes: 3 rounds of 2s, fewer round trips")
	fs.BoolVar(&o.Keep, "keep", false, "leave namespaces, daemons and the work dir in place")
	fs.StringVar(&o.From, "from", "", "measure nothing: re-render results.md and the charts from this results.json (into --out, default its directory)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	o.Cases = nil
	for _, c := range strings.Split(*cases, ",") {
		if c = strings.TrimSpace(c); c != "" {
			o.Cases = append(o.Cases, c)
		}
	}
	if o.Quick {
		o.applyQuick()
	}
	repo, err := repoRoot()
	if err != nil {
		return nil, err
	}
	o.Repo = repo
	if o.Out == "" && o.From != "" {
		o.Out = filepath.Dir(o.From)
	}
	if o.Out == "" {
		o.Out = filepath.Join(repo, "test", "netperf", "out", time.Now().UTC().Format("20060102T150405Z"))
	}
	return o, nil
}

// repoRoot is the directory of the main module's go.mod.
func repoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find module root: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("find module root: run inside the sdncni module")
	}
	return filepath.Dir(mod), nil
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "netperf:", err)
		os.Exit(2)
	}
	if o.From != "" {
		if err := rerender(o.From, o.Out); err != nil {
			fmt.Fprintln(os.Stderr, "netperf:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "\nnetperf:", err)
		stop()
		os.Exit(1)
	}
}
