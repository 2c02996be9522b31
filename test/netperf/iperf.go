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

// Kinds of iperf3 measurement.
const (
	kindTCP1 = "tcp1"
	kindTCP4 = "tcp4"
	kindUDP  = "udp"
)

const iperfPort = 5201

// IperfRun is one iperf3 client run, with the fields of its JSON output the report is
// computed from, so every number can be traced to the tool's own output.
type IperfRun struct {
	Kind string   `json:"kind"`
	Args []string `json:"args"`
	// TimeSecs is start.timestamp.timesecs: when iperf3 itself started the test.
	TimeSecs int64 `json:"timesecs"`
	// Bytes, Seconds and BitsPerSecond are end.sum_received.*.
	Bytes         int64   `json:"bytes"`
	Seconds       float64 `json:"seconds"`
	BitsPerSecond float64 `json:"bits_per_second"`
	// Retransmits is end.sum_sent.retransmits (TCP).
	Retransmits int64 `json:"retransmits"`
	// LostPercent is end.sum.lost_percent (UDP).
	LostPercent float64 `json:"lost_percent"`
	// CPU seconds (user+system) of the iperf3 client, server and, when present,
	// ovs-vswitchd over the run.
	ClientCPU float64 `json:"client_cpu_s"`
	ServerCPU float64 `json:"server_cpu_s"`
	OVSCPU    float64 `json:"ovs_cpu_s"`
	// Verification says what the datapath's counters showed, when the case has any,
	// and Path the path they show the traffic took (verify.go).
	Verification string `json:"verification,omitempty"`
	Path         string `json:"path,omitempty"`
}

// Gbps is the received throughput in Gbit/s.
func (r *IperfRun) Gbps() float64 { return r.BitsPerSecond / 1e9 }

// CPUPerGbit is CPU seconds spent per Gbit moved.
func (r *IperfRun) CPUPerGbit() float64 {
	gbit := float64(r.Bytes) * 8 / 1e9
	if gbit == 0 {
		return 0
	}
	return (r.ClientCPU + r.ServerCPU + r.OVSCPU) / gbit
}

// iperfOutput is the part of iperf3's --json output we read.
type iperfOutput struct {
	Error string `json:"error"`
	Start struct {
		Timestamp struct {
			TimeSecs int64 `json:"timesecs"`
		} `json:"timestamp"`
	} `json:"start"`
	End struct {
		Sum struct {
			LostPercent float64 `json:"lost_percent"`
		} `json:"sum"`
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

func parseIperf(out []byte) (*IperfRun, error) {
	var o iperfOutput
	if err := json.Unmarshal(out, &o); err != nil {
		return nil, fmt.Errorf("parse iperf3 json: %w", err)
	}
	if o.Error != "" {
		return nil, fmt.Errorf("iperf3: %s", o.Error)
	}
	r := &IperfRun{
		TimeSecs:      o.Start.Timestamp.TimeSecs,
		Bytes:         o.End.SumReceived.Bytes,
		Seconds:       o.End.SumReceived.Seconds,
		BitsPerSecond: o.End.SumReceived.BitsPerSecond,
		Retransmits:   o.End.SumSent.Retransmits,
		LostPercent:   o.End.Sum.LostPercent,
	}
	if r.Bytes <= 0 || r.Seconds <= 0 || r.BitsPerSecond <= 0 {
		return nil, fmt.Errorf("iperf3 moved nothing (bytes %d in %.2fs)", r.Bytes, r.Seconds)
	}
	return r, nil
}

func iperfClientArgs(kind string, server string, o *options) []string {
	secs := int((o.Duration + time.Second - 1) / time.Second)
	args := []string{"-c", server, "-p", strconv.Itoa(iperfPort), "--json", "-t", strconv.Itoa(secs), "--connect-timeout", "3000"}
	switch kind {
	case kindTCP4:
		args = append(args, "-P", "4")
	case kindUDP:
		args = append(args, "-u", "-b", o.UDPRate)
	}
	if o.Len != "" {
		args = append(args, "-l", o.Len)
	}
	return args
}

// runIperf runs one iperf3 measurement from pod A to pod B. ovsPIDs are the
// ovs-vswitchd processes whose CPU the run is charged with; v, when not nil, checks the
// path taken.
func runIperf(ctx context.Context, pair podPair, kind string, o *options, ovsPIDs []int, v verifier) (*IperfRun, error) {
	srvCtx, cancel := context.WithTimeout(ctx, o.Duration+60*time.Second)
	defer cancel()
	var srvOut bytes.Buffer
	srv := inNetNS(srvCtx, pair.B.NetNS, "iperf3", "-s", "-1", "--json", "-p", strconv.Itoa(iperfPort))
	srv.Stdout = &srvOut
	srv.Stderr = &srvOut
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("start iperf3 server: %w", err)
	}
	srvDone := make(chan struct{})
	go func() {
		_ = srv.Wait()
		close(srvDone)
	}()
	stopServer := func() {
		_ = srv.Process.Kill()
		<-srvDone
	}
	if err := waitListening(ctx, srv.Process.Pid, iperfPort, srvDone); err != nil {
		stopServer()
		return nil, fmt.Errorf("iperf3 server: %w: %s", err, lastLine(srvOut.String()))
	}

	var before snapshot
	if v != nil {
		var err error
		if before, err = v.snapshot(ctx); err != nil {
			stopServer()
			return nil, err
		}
	}
	ovsBefore := procsCPUSeconds(ovsPIDs)

	args := iperfClientArgs(kind, pair.B.IP.String(), o)
	cli := inNetNS(srvCtx, pair.A.NetNS, "iperf3", args...)
	var stderr bytes.Buffer
	cli.Stderr = &stderr
	out, cliErr := cli.Output()

	select {
	case <-srvDone:
	case <-time.After(15 * time.Second):
		stopServer()
	}
	ovsAfter := procsCPUSeconds(ovsPIDs)

	run, err := parseIperf(out)
	if err != nil {
		if cliErr != nil {
			err = errors.Join(err, fmt.Errorf("iperf3 client: %w: %s", cliErr, lastLine(stderr.String())))
		}
		return nil, err
	}
	run.Kind = kind
	run.Args = args
	run.ClientCPU = cpuSeconds(cli.ProcessState)
	run.ServerCPU = cpuSeconds(srv.ProcessState)
	run.OVSCPU = ovsAfter - ovsBefore
	if v != nil {
		after, err := v.snapshot(ctx)
		if err != nil {
			return nil, err
		}
		d, err := v.check(before, after, run.Bytes)
		run.Verification, run.Path = d.Desc, d.Path
		if err != nil {
			return run, fmt.Errorf("verify %s: %w", kind, err)
		}
	}
	return run, nil
}

func cpuSeconds(ps *os.ProcessState) float64 {
	if ps == nil {
		return 0
	}
	return (ps.UserTime() + ps.SystemTime()).Seconds()
}

// waitListening waits until the process pid listens on TCP port, reading the socket
// table of its own network namespace, so no probe connection disturbs a one-off server.
func waitListening(ctx context.Context, pid, port int, exited <-chan struct{}) error {
	want := fmt.Sprintf(":%04X", port)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, f := range []string{"tcp", "tcp6"} {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, f))
			for _, line := range strings.Split(string(b), "\n")[1:] {
				fields := strings.Fields(line)
				if len(fields) > 3 && strings.HasSuffix(fields[1], want) && fields[3] == "0A" {
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

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// iperfVersion is the first line of `iperf3 --version`.
func iperfVersion(ctx context.Context) string {
	out, _ := exec.CommandContext(ctx, "iperf3", "--version").Output()
	return firstLine(string(out))
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
