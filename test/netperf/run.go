package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// harness is the state of one run.
type harness struct {
	opts           *options
	repo           string
	out            string
	work           string
	cniBin         string
	nodePath       string
	pluginsVersion string
	topo           topology
	cleanup        cleanupStack
	prog           *progress
}

// run performs a whole benchmark: build, set up, measure interleaved, report, clean up.
func run(ctx context.Context, o *options) (err error) {
	if err := o.validate(); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("netperf needs root (network namespaces)")
	}
	for _, c := range []string{"iperf3", "nsenter", "ip", "ethtool", "go"} {
		if _, err := exec.LookPath(c); err != nil {
			return fmt.Errorf("needs %s on PATH: %w", c, err)
		}
	}
	unlock, err := lockRun()
	if err != nil {
		return err
	}
	defer unlock()

	h := &harness{opts: o, repo: o.Repo, out: o.Out}
	if err := os.MkdirAll(h.out, 0o755); err != nil {
		return fmt.Errorf("create output dir: %w", err)
	}
	if h.work, err = os.MkdirTemp("", namePrefix+"-"); err != nil {
		return fmt.Errorf("create work dir: %w", err)
	}
	h.cniBin = filepath.Join(h.work, "cni-bin")
	if err := os.MkdirAll(h.cniBin, 0o755); err != nil {
		return fmt.Errorf("create cni bin dir: %w", err)
	}
	h.cleanup.push("remove work dir", func(context.Context) error { return os.RemoveAll(h.work) })
	defer func() {
		if o.Keep {
			fmt.Fprintf(os.Stderr, "--keep: left in place (work dir %s): %v\n", h.work, h.cleanup.names())
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Minute)
		defer cancel()
		err = errors.Join(err, h.cleanup.run(cctx))
	}()

	if err := removeStale(ctx); err != nil {
		return err
	}
	meta := collectMeta(ctx, h.repo, o)
	fmt.Fprintf(os.Stderr, "building reference plugins…\n")
	if h.pluginsVersion, err = buildPlugins(ctx, h.repo, h.cniBin); err != nil {
		return err
	}
	meta.PluginsVersion = h.pluginsVersion

	cases, results := h.newCases()
	h.topo.mtu = o.MTU
	if err := h.topo.setUp(ctx, &h.cleanup); err != nil {
		return fmt.Errorf("two-node topology: %w", err)
	}
	h.nodePath = netnsPath(nodeNetNS)
	for _, dp := range cases {
		if env := sdncniEnvOf(dp); env != nil {
			// Start OVS/OVN before any case registers its teardown, so that on the way
			// out the cases' DELs run while the controllers still serve them; errors
			// surface in the cases' Setup.
			_ = env.up(ctx)
			break
		}
	}
	for i, dp := range cases {
		h.cleanup.push("teardown "+dp.Name(), dp.Teardown)
		results[i].Status = statusOK
		if err := dp.Setup(ctx); err != nil {
			markFailed(results[i], err)
		}
	}

	running := 0
	for _, r := range results {
		if r.Status == statusOK {
			running++
		}
	}
	h.prog = newProgress(os.Stderr, o.Rounds*running*stepsPerRound)
	for round := 0; round < o.Rounds; round++ {
		for pos := range cases {
			i := (pos + round) % len(cases) // rotate the order every round
			if results[i].Status != statusOK {
				continue
			}
			if err := h.runRound(ctx, cases[i], results[i], round, pos); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				markFailed(results[i], fmt.Errorf("round %d: %w", round+1, err))
			}
		}
	}
	for i, dp := range cases {
		if results[i].Status == statusOK {
			if err := h.addDelLoop(ctx, dp, results[i]); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				markFailed(results[i], err)
			}
		}
		if results[i].Status != statusNotAvailable {
			results[i].Info = dp.Info(ctx)
		}
	}
	h.prog.finish()
	meta.End = time.Now().UTC()
	res := &Results{Meta: meta, Metrics: metrics, Cases: results}
	summarize(res.Cases)
	if err := writeReport(h.out, res); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "results in %s\n", h.out)
	return nil
}

func markFailed(cr *CaseResult, err error) {
	if errors.Is(err, ErrNotAvailable) {
		cr.Status = statusNotAvailable
	} else {
		cr.Status = statusFailed
	}
	cr.Reason = err.Error()
}

// newCases builds the selected cases in report order.
func (h *harness) newCases() ([]datapath, []*CaseResult) {
	var env *sdncniEnv
	sdncniEnvOnce := func() *sdncniEnv {
		if env == nil {
			env = newSdncniEnv(h)
		}
		return env
	}
	var cases []datapath
	var results []*CaseResult
	for _, name := range allCases {
		if !h.opts.hasCase(name) {
			continue
		}
		var dp datapath
		switch name {
		case caseVeth:
			dp = &vethCase{mtu: h.opts.MTU}
		case caseBridge:
			dp = &bridgeCase{h: h}
		case caseSdncniOVS:
			dp = &sdncniCase{h: h, env: sdncniEnvOnce(), fast: false}
		case caseSdncniFast:
			dp = &sdncniCase{h: h, env: sdncniEnvOnce(), fast: true}
		case caseUnderlay:
			dp = &underlayCase{h: h}
		case caseVXLANBridge:
			dp = &vxlanBridgeCase{h: h}
		case caseSdncniGeneve:
			dp = &sdncniCrossCase{h: h, env: sdncniEnvOnce(), fast: false}
		case caseSdncniFastCross:
			dp = &sdncniCrossCase{h: h, env: sdncniEnvOnce(), fast: true}
		}
		cases = append(cases, dp)
		results = append(results, &CaseResult{Name: name, Runs: []Run{}})
	}
	return cases, results
}

// sdncniEnvOf is the OVS/OVN environment of an sdncni case, nil for the others.
func sdncniEnvOf(dp datapath) *sdncniEnv {
	switch c := dp.(type) {
	case *sdncniCase:
		return c.env
	case *sdncniCrossCase:
		return c.env
	}
	return nil
}

// removeStale deletes pod namespaces a killed earlier run left behind. The node
// namespaces may hold a dev-env of that run; they are left alone and reported.
func removeStale(ctx context.Context) error {
	names, err := ourNetNS()
	if err != nil {
		return err
	}
	for _, n := range names {
		if n == nodeNetNS || n == node2NetNS {
			return fmt.Errorf("netns %s exists: a previous run left it (stop its dev-env and run 'ip netns del %s')", n, n)
		}
	}
	for _, n := range names {
		if err := delNetNS(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// lockRun keeps two runs from sharing the namespace names.
func lockRun() (func(), error) {
	f, err := os.OpenFile("/run/"+namePrefix+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another netperf run is active: %w", err)
	}
	return func() { f.Close() }, nil
}
