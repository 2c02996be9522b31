package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestVswitchdCrashRestarted: a node's ovs-vswitchd dying (SIGABRT, as Debian 12's OVS
// 3.1.0 does on its conntrack assertion; SIGKILL) is started again at once by dev-env.sh's
// supervisor, with the pidfile naming the new one, its bridges and br-phy's address back,
// and forwarding on the underlay again; Stop then leaves no process behind, the
// supervisors included, and nothing restarts ovs-vswitchd on the way down.
func TestVswitchdCrashRestarted(t *testing.T) {
	c := StartCluster(t, 2)
	o := c.Nodes[0]
	nd := filepath.Join(c.Dir, "node-"+o.NetNS)
	pidfile := filepath.Join(nd, "ovs-vswitchd.pid")
	require.Equal(t, pidfile, o.Env["SDNCNI_VSWITCHD_PIDFILE"])

	for i, sig := range []syscall.Signal{syscall.SIGABRT, syscall.SIGKILL} {
		old := readPIDFile(t, pidfile)
		require.True(t, procRuns(old, "ovs-vswitchd"), "pidfile names pid %d", old)
		pid := o.CrashVswitchd(t, sig)
		require.Equal(t, pid, readPIDFile(t, pidfile))
		require.True(t, procRuns(pid, "ovs-vswitchd"), "pidfile names pid %d", pid)
		log := readFile(t, filepath.Join(nd, supervisorLog))
		require.Equal(t, i+1, strings.Count(log, restartedLine), log)
		require.Contains(t, log, fmt.Sprintf("ovs-vswitchd of node %s exited (status %d), restarted as %d",
			o.NetNS, 128+int(sig), pid))

		// It answers on the same control socket and has the node's bridges again.
		out, err := exec.Command("ovs-appctl", "-t", filepath.Join(nd, "ovs-vswitchd.ctl"), "version").CombinedOutput()
		require.NoError(t, err, "%s", out)
		require.Equal(t, "netdev", o.Vsctl(t, "get", "Bridge", "br-int", "datapath_type"))
		require.Contains(t, o.Vsctl(t, "--bare", "--columns=options", "find", "Interface", "type=geneve"), "remote_ip="+c.EncapIP(1))
		out, err = exec.Command("ip", "-n", o.NetNS, "-br", "addr", "show", "br-phy").CombinedOutput()
		require.NoError(t, err, "%s", out)
		require.Contains(t, string(out), c.EncapIP(0)+"/24")
		require.Contains(t, string(out), "UP")
		// br-phy's userspace datapath carries the underlay again.
		require.Eventually(t, func() bool {
			return exec.Command("nsenter", "--net="+o.NetNSPath, "ping", "-c1", "-W1", c.EncapIP(1)).Run() == nil
		}, 10*time.Second, 100*time.Millisecond, "no ping over the underlay after %v", sig)
	}
	status, err := o.Status()
	require.NoError(t, err, status)

	// Every process of the cluster goes with Stop; the supervisors must not start
	// ovs-vswitchd again while the nodes go down.
	pids := map[int]string{}
	pidfiles, err := filepath.Glob(filepath.Join(c.Dir, "*", "*.pid"))
	require.NoError(t, err)
	for _, f := range pidfiles {
		pid := readPIDFile(t, f)
		pids[pid] = strings.TrimSpace(readFile(t, fmt.Sprintf("/proc/%d/comm", pid)))
	}
	require.Contains(t, pids, readPIDFile(t, filepath.Join(nd, "ovs-vswitchd-supervisor.pid")))
	require.NoError(t, c.Stop())
	for pid, comm := range pids {
		require.Eventually(t, func() bool { return !procRuns(pid, comm) }, 5*time.Second, 50*time.Millisecond,
			"%s (%d) still runs after Stop", comm, pid)
	}
	out, err := exec.Command("pgrep", "-f", "--", "--dir "+c.Dir).CombinedOutput()
	require.Error(t, err, "processes of %s still run: %s", c.Dir, out)
}

// TestVswitchdSupervisorLimits: the supervisor gives up after more than 5 deaths in 5
// minutes, as the DaemonSet does, and 'up' starts it again; ovs-vswitchd stopped on
// purpose (SIGTERM, what stop_pid sends) stays stopped.
func TestVswitchdSupervisorLimits(t *testing.T) {
	o := StartOVN(t)
	pidfile := o.Env["SDNCNI_VSWITCHD_PIDFILE"]
	logPath := filepath.Join(filepath.Dir(pidfile), supervisorLog)
	waitLog := func(line string, n int) {
		t.Helper()
		require.Eventually(t, func() bool { return countIn(logPath, line) == n }, restartWait, 50*time.Millisecond,
			"want %d× %q in %s", n, line, logPath)
	}
	for range 5 {
		o.CrashVswitchd(t, syscall.SIGABRT)
	}
	require.NoError(t, syscall.Kill(readPIDFile(t, pidfile), syscall.SIGABRT))
	waitLog("6 deaths in 300s: giving up", 1)
	out, err := o.Status()
	require.Error(t, err, out)
	require.Regexp(t, `ovs-vswitchd +dead`, out)

	out, err = o.run("up")
	require.NoError(t, err, out)
	out, err = o.Status()
	require.NoError(t, err, out)

	require.NoError(t, syscall.Kill(readPIDFile(t, pidfile), syscall.SIGTERM))
	waitLog("exited (status 143) on request; not restarting", 1)
	time.Sleep(500 * time.Millisecond)
	out, err = o.Status()
	require.Error(t, err, out)
	require.Regexp(t, `ovs-vswitchd +dead`, out)
	require.Regexp(t, `ovs-vswitchd supervisor +dead`, out)
}

func readPIDFile(t *testing.T, path string) int {
	t.Helper()
	pid, err := readPID(path)
	require.NoError(t, err)
	return pid
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(data)
}

// procRuns reports whether pid is a live process (not a zombie) whose command is comm.
func procRuns(pid int, comm string) bool {
	got, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil || strings.TrimSpace(string(got)) != comm {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command in parentheses, which may itself hold ") ".
	s := string(stat)
	i := strings.LastIndex(s, ") ")
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}
