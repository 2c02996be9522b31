package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ovsVerifier sums the counters of every port on the integration bridge. With the fast
// path on, pod-to-pod traffic must not cross OVS: the counters may move by less than
// fastPathSlack of the bytes moved (ARP/ND and the like). With it off, OVS must have
// received at least the bytes moved.
//
// Counters are read live over OpenFlow (ovs-ofctl dump-ports on the bridge's .mgmt
// socket) when that socket is known. The Interface statistics column in OVSDB is only
// refreshed every 5 s, so the fallback reads it after waiting for a refresh.
type ovsVerifier struct {
	db, bridge string
	mgmt       string // <rundir>/<bridge>.mgmt, "" when unknown
	fast       bool
}

// fastPathSlack is the share of the moved bytes OVS ports may still see on the fast path.
const fastPathSlack = 0.01

// ovsdbStatsSettle is how long the OVSDB statistics fallback waits for a refresh
// (ovs-vswitchd's stats-update-interval is at least 5 s).
const ovsdbStatsSettle = 5500 * time.Millisecond

func (v *ovsVerifier) vsctl(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "ovs-vsctl", append([]string{"--db=" + v.db, "--timeout=10"}, args...)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("ovs-vsctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func (v *ovsVerifier) snapshot(ctx context.Context) (snapshot, error) {
	c, err := v.portCounters(ctx)
	if err != nil {
		return nil, err
	}
	return snapshot{"ovs": c}, nil
}

// portCounters sums the counters of every port on the bridge.
func (v *ovsVerifier) portCounters(ctx context.Context) (counters, error) {
	if v.mgmt != "" {
		out, err := exec.CommandContext(ctx, "ovs-ofctl", "-O", "OpenFlow13", "dump-ports", "unix:"+v.mgmt).CombinedOutput()
		if err != nil {
			return counters{}, fmt.Errorf("ovs-ofctl dump-ports: %w: %s", err, strings.TrimSpace(string(out)))
		}
		return parseDumpPorts(string(out))
	}
	select {
	case <-time.After(ovsdbStatsSettle):
	case <-ctx.Done():
		return counters{}, ctx.Err()
	}
	return v.ovsdbSnapshot(ctx)
}

// parseDumpPorts sums the rx/tx lines of ovs-ofctl dump-ports over all ports:
//
//	port  1: rx pkts=10, bytes=1234, drop=0, errs=0, frame=0, over=0, crc=0
//	         tx pkts=2, bytes=99, drop=0, errs=0, coll=0
func parseDumpPorts(out string) (counters, error) {
	var sum counters
	seen := false
	for _, line := range strings.Split(out, "\n") {
		l := strings.TrimSpace(line)
		if _, rest, ok := strings.Cut(l, ": rx "); ok && strings.HasPrefix(l, "port ") {
			l = "rx " + rest
		}
		dir, rest, ok := strings.Cut(l, " ")
		if !ok || (dir != "rx" && dir != "tx") {
			continue
		}
		var pkts, bytes int64
		for _, kv := range strings.Split(rest, ",") {
			k, val, ok := strings.Cut(strings.TrimSpace(kv), "=")
			if !ok {
				continue
			}
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil {
				n = 0 // "?" for counters a port does not keep
			}
			switch k {
			case "pkts":
				pkts = n
			case "bytes":
				bytes = n
			}
		}
		seen = true
		if dir == "rx" {
			sum.RxPackets += pkts
			sum.RxBytes += bytes
		} else {
			sum.TxPackets += pkts
			sum.TxBytes += bytes
		}
	}
	if !seen {
		return counters{}, fmt.Errorf("parse dump-ports: no port counters in %q", firstLine(out))
	}
	return sum, nil
}

// ovsdbSnapshot sums the Interface statistics of the bridge's ports from OVSDB.
func (v *ovsVerifier) ovsdbSnapshot(ctx context.Context) (counters, error) {
	out, err := v.vsctl(ctx, "list-ports", v.bridge)
	if err != nil {
		return counters{}, err
	}
	ports := strings.Fields(out)
	if len(ports) == 0 {
		return counters{}, fmt.Errorf("no ports on %s", v.bridge)
	}
	var args []string
	for i, p := range ports {
		if i > 0 {
			args = append(args, "--")
		}
		args = append(args, "get", "Interface", p, "statistics")
	}
	out, err = v.vsctl(ctx, args...)
	if err != nil {
		return counters{}, err
	}
	var sum counters
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		c, err := parseOVSStatistics(line)
		if err != nil {
			return counters{}, err
		}
		sum.RxBytes += c.RxBytes
		sum.TxBytes += c.TxBytes
		sum.RxPackets += c.RxPackets
		sum.TxPackets += c.TxPackets
	}
	return sum, nil
}

// parseOVSStatistics parses ovs-vsctl's rendering of a statistics map:
// {collisions=0, rx_bytes=123, rx_packets=4, tx_bytes=56, ...}.
func parseOVSStatistics(s string) (counters, error) {
	var c counters
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "{") || !strings.HasSuffix(s, "}") {
		return c, fmt.Errorf("parse statistics %q: not a map", s)
	}
	body := strings.TrimSpace(s[1 : len(s)-1])
	if body == "" {
		return c, nil
	}
	for _, kv := range strings.Split(body, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return c, fmt.Errorf("parse statistics %q: bad entry %q", s, kv)
		}
		n, err := strconv.ParseInt(strings.Trim(val, `"`), 10, 64)
		if err != nil {
			return c, fmt.Errorf("parse statistics %q: %w", s, err)
		}
		switch k {
		case "rx_bytes":
			c.RxBytes = n
		case "tx_bytes":
			c.TxBytes = n
		case "rx_packets":
			c.RxPackets = n
		case "tx_packets":
			c.TxPackets = n
		}
	}
	return c, nil
}

func (v *ovsVerifier) check(before, after snapshot, moved int64) (verdict, error) {
	desc, err := judgeOVSCounters(v.fast, before["ovs"], after["ovs"], moved)
	d := verdict{Desc: desc}
	if err == nil {
		d.Path = pathOVS
		if v.fast {
			d.Path = pathFast
		}
	}
	return d, err
}

func judgeOVSCounters(fast bool, before, after counters, moved int64) (string, error) {
	rx := after.RxBytes - before.RxBytes
	tx := after.TxBytes - before.TxBytes
	desc := fmt.Sprintf("OVS ports rx %d B, tx %d B while %d B were moved", rx, tx, moved)
	if fast {
		if float64(rx+tx) > fastPathSlack*float64(moved) {
			return desc, fmt.Errorf("fast path claimed but OVS saw the traffic: %s", desc)
		}
		return desc, nil
	}
	if rx < moved {
		return desc, fmt.Errorf("OVS path claimed but OVS ports received less than was moved: %s", desc)
	}
	return desc, nil
}

// procCPUSeconds is utime+stime of pid from /proc/<pid>/stat (all threads), or 0 when
// pid is 0 or gone. It assumes USER_HZ is 100, as on every mainstream Linux build.
func procCPUSeconds(pid int) float64 {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	// After the command name: state is field 3, utime 14 and stime 15 (1-based).
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100
}

// procsCPUSeconds sums procCPUSeconds over pids.
func procsCPUSeconds(pids []int) float64 {
	sum := 0.0
	for _, pid := range pids {
		sum += procCPUSeconds(pid)
	}
	return sum
}

// findPID reads the first pidfile named name under dir; 0 when there is none or the
// process is gone.
func findPID(dir, name string) int {
	pid := 0
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != name {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", n)); err == nil {
				pid = n
				return fs.SkipAll
			}
		}
		return nil
	})
	return pid
}

// toolVersion is the first line of `name --version`, or "not installed".
func toolVersion(ctx context.Context, name string) string {
	out, err := exec.CommandContext(ctx, name, "--version").Output()
	if err != nil {
		return "not installed"
	}
	return firstLine(string(out))
}
