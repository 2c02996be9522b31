package cniserver

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/stretchr/testify/require"

	"github.com/sdncni/sdncni/internal/testenv"
	"github.com/sdncni/sdncni/pkg/cniapi"
)

func randName(t *testing.T, prefix string) string {
	b := make([]byte, 3)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return prefix + hex.EncodeToString(b)
}

// ipNetns runs `ip netns args...` and deletes the named namespace at cleanup.
func ipNetns(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns"}, args...)...).CombinedOutput()
	require.NoError(t, err, "ip netns %v: %s", args, out)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	return "/run/netns/" + name
}

// TestNetnsValidation: ADD and CHECK are refused (code 4) for a CNI_NETNS outside the
// runtimes' netns directories or /proc/<pid>/ns/net, for anything that is not a network
// namespace, and for the node's own network namespace whatever path leads to it (a bind
// mount under /run/netns, a symlink); real pod namespaces pass. DEL with any of these
// still succeeds, without the path.
func TestNetnsValidation(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "ip", "unshare", "sleep")

	pod := randName(t, "sdncni-cnis-")
	podPath := ipNetns(t, pod, "add", pod)
	// `ip netns attach NAME PID` bind-mounts the test's namespace (the node's, and the
	// "controller's" own) under /run/netns: a path that looks like a pod's.
	hostAlias := randName(t, "sdncni-cnis-")
	hostAliasPath := ipNetns(t, hostAlias, "attach", hostAlias, strconv.Itoa(os.Getpid()))

	// A process in a namespace of its own, reached as /proc/<pid>/ns/net.
	sleeper := exec.Command("unshare", "--net", "sleep", "60")
	require.NoError(t, sleeper.Start())
	t.Cleanup(func() { _ = sleeper.Process.Kill(); _ = sleeper.Wait() })
	procPath := "/proc/" + strconv.Itoa(sleeper.Process.Pid) + "/ns/net"
	require.Eventually(t, func() bool {
		a, errA := os.Readlink(procPath)
		b, errB := os.Readlink("/proc/self/ns/net")
		return errA == nil && errB == nil && a != b
	}, 5e9, 1e7, "unshare did not enter a new netns")

	// An extra allowed directory holding things that must still be refused.
	extra := t.TempDir()
	require.NoError(t, os.Symlink("/proc/"+strconv.Itoa(os.Getpid())+"/ns/net", filepath.Join(extra, "to-host")))
	require.NoError(t, os.Symlink("/proc/self/ns/mnt", filepath.Join(extra, "mnt-ns")))
	require.NoError(t, os.WriteFile(filepath.Join(extra, "plain"), []byte("x"), 0o600))
	require.NoError(t, os.Symlink(podPath, filepath.Join(extra, "to-pod")))

	mgr := &recordingManager{}
	sock := serve(t, mgr, WithNetnsPrefixes(append([]string{extra}, DefaultNetnsPrefixes...)))

	good := []string{podPath, "/var/run/netns/" + pod, procPath, filepath.Join(extra, "to-pod")}
	bad := map[string]string{
		"/proc/1/ns/net": "pid 1 is the node",
		"/proc/" + strconv.Itoa(os.Getpid()) + "/ns/net": "the controller's own netns",
		"/proc/self/ns/net":              "not /proc/<pid>",
		hostAliasPath:                    "bind mount of the node's netns",
		filepath.Join(extra, "to-host"):  "symlink to the node's netns",
		filepath.Join(extra, "mnt-ns"):   "a mount namespace",
		filepath.Join(extra, "plain"):    "a plain file",
		"/run/netns/../../proc/1/ns/net": "not a clean path",
		"/run/netns/" + pod + "/":        "not a clean path",
		"/etc/hostname":                  "outside every prefix",
		"/run/netns/sdncni-cnis-absent":  "does not exist",
		"/proc/1/ns/../ns/net":           "not a clean path",
		"/proc/01/ns/net":                "pid spelt oddly",
		"/run/netns/":                    "the directory itself",
		"run/netns/" + pod:               "relative",
	}
	for _, cmd := range []string{"ADD", "CHECK"} {
		for _, p := range good {
			_, _, before := mgr.last()
			resp := do(t, sock, &cniapi.Request{Command: cmd, ContainerID: "c1", IfName: "eth0", Netns: p})
			require.Nil(t, resp.Error, "%s %s", cmd, p)
			got, r, after := mgr.last()
			require.Equal(t, before+1, after)
			require.Equal(t, cmd, got)
			require.Equal(t, p, r.Netns)
		}
		for p, why := range bad {
			_, _, before := mgr.last()
			resp := do(t, sock, &cniapi.Request{Command: cmd, ContainerID: "c1", IfName: "eth0", Netns: p})
			require.NotNil(t, resp.Error, "%s %s (%s) must be refused", cmd, p, why)
			require.Equal(t, uint(types.ErrInvalidEnvironmentVariables), resp.Error.Code, "%s %s: %s", cmd, p, resp.Error.Error())
			require.Equal(t, "invalid CNI_NETNS", resp.Error.Msg)
			_, _, after := mgr.last()
			require.Equal(t, before, after, "%s %s reached the manager", cmd, p)
		}
	}
	resp := do(t, sock, &cniapi.Request{Command: "ADD", ContainerID: "c1", IfName: "eth0", Netns: hostAliasPath})
	require.Contains(t, resp.Error.Details, "node's network namespace")

	// DEL is best effort: a bogus or vanished netns is dropped, the cleanup goes on.
	for p := range bad {
		resp := do(t, sock, &cniapi.Request{Command: "DEL", ContainerID: "c1", IfName: "eth0", Netns: p})
		require.Nil(t, resp.Error, "DEL %s", p)
		got, r, _ := mgr.last()
		require.Equal(t, "DEL", got)
		require.Empty(t, r.Netns, "DEL %s: the refused path must not reach the manager", p)
	}
	resp = do(t, sock, &cniapi.Request{Command: "DEL", ContainerID: "c1", IfName: "eth0", Netns: podPath})
	require.Nil(t, resp.Error)
	_, r, _ := mgr.last()
	require.Equal(t, podPath, r.Netns, "a valid netns is passed on to DEL")
}
