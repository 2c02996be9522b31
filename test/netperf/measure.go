package main

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// stepsPerRound is what one case does in one round, for the progress line.
const stepsPerRound = 6

// runRound sets up the case's pods, measures everything once, and deletes the pods.
func (h *harness) runRound(ctx context.Context, dp datapath, cr *CaseResult, round, pos int) (err error) {
	o := h.opts
	label := fmt.Sprintf("round %d/%d %s", round+1, o.Rounds, dp.Name())
	h.prog.step("%s: add pods", label)
	run := Run{Round: round, Position: pos, Start: time.Now().UTC()}
	pair, took, err := dp.AddPods(ctx, round)
	if err != nil {
		return fmt.Errorf("add pods: %w", err)
	}
	defer func() {
		if derr := dp.DelPods(context.WithoutCancel(ctx)); derr != nil && err == nil {
			err = fmt.Errorf("delete pods: %w", derr)
		}
	}()
	h.prog.advance()
	for _, d := range took {
		run.AddMS = append(run.AddMS, millis(d))
	}
	if cr.Offloads == "" {
		cr.Offloads = offloads(ctx, pair.A)
	}
	ovsPIDs := h.ovsPIDs(dp)
	for _, k := range []struct {
		kind string
		dst  **IperfRun
	}{{kindTCP1, &run.TCP1}, {kindTCP4, &run.TCP4}, {kindUDP, &run.UDP}} {
		h.prog.step("%s: iperf3 %s", label, k.kind)
		r, err := runIperf(ctx, pair, k.kind, o, ovsPIDs, dp.Verifier())
		if err != nil {
			return fmt.Errorf("iperf3 %s: %w", k.kind, err)
		}
		*k.dst = r
		h.prog.advance()
	}
	h.prog.step("%s: request/response", label)
	if run.RR, err = pingPong(ctx, pair, o.MsgSize, o.RRCount, o.RRLimit); err != nil {
		return fmt.Errorf("request/response: %w", err)
	}
	h.prog.advance()
	h.prog.step("%s: connect rate", label)
	if run.Connect, err = connectRate(ctx, pair, o.ConnectCount, o.ConnectLimit); err != nil {
		return fmt.Errorf("connect rate: %w", err)
	}
	h.prog.advance()
	run.Metrics = runMetrics(&run)
	cr.Runs = append(cr.Runs, run)
	return nil
}

// ovsPIDs are the ovs-vswitchd processes on the path of an sdncni case: node 1's for
// the same-node cases, both nodes' for the cross-node ones; none for the others.
func (h *harness) ovsPIDs(dp datapath) []int {
	switch c := dp.(type) {
	case *sdncniCase:
		return []int{c.env.nodes[0].vswitchdPID()}
	case *sdncniCrossCase:
		return []int{c.env.nodes[0].vswitchdPID(), c.env.nodes[1].vswitchdPID()}
	}
	return nil
}

// addDelLoop times o.AddLoop ADD/DEL pairs of one extra pod, bounded in time.
func (h *harness) addDelLoop(ctx context.Context, dp datapath, cr *CaseResult) error {
	deadline := time.Now().Add(h.opts.AddLoopLimit)
	for i := 0; i < h.opts.AddLoop && time.Now().Before(deadline); i++ {
		h.prog.step("%s: ADD/DEL loop %d/%d", dp.Name(), i+1, h.opts.AddLoop)
		add, del, err := dp.AddDel(ctx, i)
		if errors.Is(err, errors.ErrUnsupported) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("add/del loop: %w", err)
		}
		cr.AddLoop = append(cr.AddLoop, AddDelSample{AddMS: millis(add), DelMS: millis(del)})
	}
	return nil
}
