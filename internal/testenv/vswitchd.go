package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	// supervisorLog is the node dir's log of dev-env.sh's ovs-vswitchd supervisor.
	supervisorLog = "ovs-vswitchd-supervisor.log"
	// restartedLine is in the supervisor's log once per restart, after br-phy's address
	// is back.
	restartedLine = "restarted as"
	// restartWait bounds how long CrashVswitchd waits for the restart.
	restartWait = 30 * time.Second
)

// CrashVswitchd sends sig to the node's ovs-vswitchd (the process its pidfile names), as
// a crash would (SIGABRT: Debian 12's OVS 3.1.0 failing its conntrack assertion), and
// waits until hack/dev-env.sh's supervisor has started it again and restored what dies
// with it. It returns the new ovs-vswitchd's PID.
func (o *OVN) CrashVswitchd(t testing.TB, sig syscall.Signal) int {
	t.Helper()
	pidfile := o.Env["SDNCNI_VSWITCHD_PIDFILE"]
	logPath := filepath.Join(filepath.Dir(pidfile), supervisorLog)
	before := countIn(logPath, restartedLine)
	old, err := readPID(pidfile)
	if err != nil {
		t.Fatalf("crash ovs-vswitchd: %v", err)
	}
	if err := syscall.Kill(old, sig); err != nil {
		t.Fatalf("crash ovs-vswitchd: kill %d: %v", old, err)
	}
	deadline := time.Now().Add(restartWait)
	for countIn(logPath, restartedLine) == before {
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			t.Fatalf("ovs-vswitchd of %s not restarted within %s after %v; %s:\n%s", o.NetNS, restartWait, sig, logPath, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	pid, err := readPID(pidfile)
	if err != nil || pid == old {
		t.Fatalf("ovs-vswitchd of %s restarted, but its pidfile names %d (was %d): %v", o.NetNS, pid, old, err)
	}
	return pid
}

// VswitchdRestarts is how often hack/dev-env.sh's supervisor has restarted the node's
// ovs-vswitchd (a crash: Debian 12's OVS 3.1.0 aborts in its userspace conntrack now
// and then, docs/deploy.md "ovs-vswitchd crashes").
func (o *OVN) VswitchdRestarts() int {
	return countIn(filepath.Join(filepath.Dir(o.Env["SDNCNI_VSWITCHD_PIDFILE"]), supervisorLog), restartedLine)
}

// Appctl runs ovs-appctl against the node's ovs-vswitchd (its control socket beside its
// pidfile) and returns the output; it fails t on error.
func (o *OVN) Appctl(t testing.TB, args ...string) string {
	t.Helper()
	ctl := filepath.Join(filepath.Dir(o.Env["SDNCNI_VSWITCHD_PIDFILE"]), "ovs-vswitchd.ctl")
	out, err := exec.Command("ovs-appctl", append([]string{"-t", ctl}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ovs-appctl %s on %s: %v\n%s", strings.Join(args, " "), o.NetNS, err, out)
	}
	return string(out)
}

func countIn(path, s string) int {
	data, _ := os.ReadFile(path)
	return strings.Count(string(data), s)
}

func readPID(pidfile string) (int, error) {
	data, err := os.ReadFile(pidfile)
	if err != nil {
		return 0, fmt.Errorf("read pidfile: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return 0, fmt.Errorf("read pidfile %s: %w", pidfile, err)
	}
	return pid, nil
}
