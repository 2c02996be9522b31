package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// iperfPort is the iperf3 server's port (control and data connections).
const iperfPort = 5201

// iperfResult is what one iperf3 client run reports: end.sum_received.bits_per_second
// and end.sum_sent.retransmits, as test/netperf reads them.
type iperfResult struct {
	gbps        float64
	retransmits int64
}

type iperfOutput struct {
	Error string `json:"error"`
	End   struct {
		SumSent struct {
			Retransmits int64 `json:"retransmits"`
		} `json:"sum_sent"`
		SumReceived struct {
			Seconds       float64 `json:"seconds"`
			Bytes         int64   `json:"bytes"`
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
	} `json:"end"`
}

func parseIperf(out []byte) (iperfResult, error) {
	var o iperfOutput
	if err := json.Unmarshal(out, &o); err != nil {
		return iperfResult{}, fmt.Errorf("parse iperf3 json: %w", err)
	}
	if o.Error != "" {
		return iperfResult{}, fmt.Errorf("iperf3: %s", o.Error)
	}
	r := o.End.SumReceived
	if r.Bytes <= 0 || r.Seconds <= 0 || r.BitsPerSecond <= 0 {
		return iperfResult{}, fmt.Errorf("iperf3 moved nothing (bytes %d in %.2fs)", r.Bytes, r.Seconds)
	}
	return iperfResult{gbps: r.BitsPerSecond / 1e9, retransmits: o.End.SumSent.Retransmits}, nil
}

// inPod returns a command running name in the pod's netns; nsenter execs the program,
// so the command's PID is the program's.
func inPod(ctx context.Context, p *bpod, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + p.netns, "--", name}, args...)...)
}

// iperf runs one iperf3 TCP test of d with streams parallel streams from client to a
// one-off server in server; around the client's run (the server listening) it calls
// around(true) and around(false), for counter snapshots.
func iperf(ctx context.Context, client, server *bpod, streams int, d time.Duration, around func(before bool) error) (iperfResult, error) {
	ctx, cancel := context.WithTimeout(ctx, d+60*time.Second)
	defer cancel()
	var srvOut bytes.Buffer
	srv := inPod(ctx, server, "iperf3", "-s", "-1", "--json", "-p", strconv.Itoa(iperfPort))
	srv.Stdout, srv.Stderr = &srvOut, &srvOut
	if err := srv.Start(); err != nil {
		return iperfResult{}, fmt.Errorf("start iperf3 server: %w", err)
	}
	srvDone := make(chan struct{})
	go func() { _ = srv.Wait(); close(srvDone) }()
	stopServer := func() {
		select {
		case <-srvDone:
			return
		case <-time.After(15 * time.Second):
		}
		_ = srv.Process.Kill()
		<-srvDone
	}
	if err := waitListening(ctx, srv.Process.Pid, iperfPort, srvDone); err != nil {
		_ = srv.Process.Kill()
		<-srvDone
		return iperfResult{}, fmt.Errorf("iperf3 server: %w: %s", err, strings.TrimSpace(srvOut.String()))
	}
	if err := around(true); err != nil {
		_ = srv.Process.Kill()
		<-srvDone
		return iperfResult{}, err
	}
	secs := int((d + time.Second - 1) / time.Second)
	args := []string{"-c", server.ip.String(), "-p", strconv.Itoa(iperfPort), "--json", "-t", strconv.Itoa(secs), "--connect-timeout", "3000"}
	if streams > 1 {
		args = append(args, "-P", strconv.Itoa(streams))
	}
	cli := inPod(ctx, client, "iperf3", args...)
	var stderr bytes.Buffer
	cli.Stderr = &stderr
	out, cliErr := cli.Output()
	aerr := around(false)
	stopServer()
	r, err := parseIperf(out)
	if err != nil {
		if cliErr != nil {
			err = errors.Join(err, fmt.Errorf("iperf3 client: %w: %s", cliErr, strings.TrimSpace(stderr.String())))
		}
		return r, err
	}
	return r, aerr
}

// waitListening waits until process pid listens on TCP port, reading the socket table
// of its own netns, so that no probe connection disturbs the one-off server.
func waitListening(ctx context.Context, pid, port int, exited <-chan struct{}) error {
	want := fmt.Sprintf(":%04X", port)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, table := range []string{"tcp", "tcp6"} {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, table))
			for _, line := range strings.Split(string(b), "\n")[1:] {
				f := strings.Fields(line)
				if len(f) > 3 && strings.HasSuffix(f[1], want) && f[3] == "0A" {
					return nil
				}
			}
		}
		select {
		case <-exited:
			return errors.New("exited before listening")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return errors.New("not listening after 10s")
}
