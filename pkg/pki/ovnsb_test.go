package pki_test

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/sdncni/sdncni/internal/testenv"
	"github.com/sdncni/sdncni/pkg/pki"
)

// TestSouthboundRBAC runs deploy/ovn-central's own run-db.sh (NB and SB, one member)
// and ovn-northd as the StatefulSet does, with certificates from this package: over the
// nodes' ssl: listener a client holding node-a's certificate (made as a node makes it,
// signed as the cluster role signs it) writes node-a's Chassis and Encap rows but cannot
// modify or delete node-b's, nor create a chassis of another name; ovn-northd's unix
// socket stays unrestricted.
func TestSouthboundRBAC(t *testing.T) {
	testenv.RequireCommands(t, "ovsdb-server", "ovsdb-tool", "ovn-northd", "ovn-sbctl")
	dir := t.TempDir()
	dbDir, run, pkiDir := filepath.Join(dir, "db"), filepath.Join(dir, "run"), filepath.Join(dir, "pki")
	for _, d := range []string{dbDir, run, pkiDir} {
		require.NoError(t, os.MkdirAll(d, 0o700))
	}
	now := time.Now()
	ca, err := pki.NewCA("test-ca", 24*time.Hour, now)
	require.NoError(t, err)
	srv, err := pki.Issue(ca, "ovn-central", pki.Server, time.Hour, now)
	require.NoError(t, err)
	write(t, pkiDir, "tls.key", srv.Key)
	write(t, pkiDir, "tls.crt", srv.Cert)
	write(t, pkiDir, "ca.crt", ca.Cert)
	nodeA := nodeFiles(t, ca, "node-a", filepath.Join(dir, "node-a"), now)

	script := runDBScript(t)
	ports := freePorts(t, 4)
	env := append(os.Environ(), "POD_NAME=ovn-central-0", "POD_IP=127.0.0.1",
		"RUNDB_DB_DIR="+dbDir, "RUNDB_RUN_DIR="+run, "RUNDB_PKI_DIR="+pkiDir,
		"RUNDB_NB_PORT="+ports[0], "RUNDB_SB_PORT="+ports[1], "RUNDB_NB_RAFT_PORT="+ports[2], "RUNDB_SB_RAFT_PORT="+ports[3])
	for _, db := range []string{"nb", "sb"} {
		start(t, env, filepath.Join(dir, db+".log"), "sh", script, db)
	}
	waitFile(t, filepath.Join(run, "ovnnb_db.sock"))
	waitFile(t, filepath.Join(run, "ovnsb_db.sock"))
	start(t, env, filepath.Join(dir, "northd.log"), "ovn-northd", "--ovnnb-db=unix:"+run+"/ovnnb_db.sock",
		"--ovnsb-db=unix:"+run+"/ovnsb_db.sock", "--no-chdir", "-vconsole:info", "-vfile:off",
		"--pidfile="+run+"/ovn-northd.pid", "--unixctl="+run+"/ovn-northd.ctl")

	admin := func(args ...string) (string, error) {
		return sbctl(append([]string{"--db=unix:" + run + "/ovnsb_db.sock"}, args...)...)
	}
	asA := func(args ...string) (string, error) {
		return sbctl(append([]string{"--db=ssl:127.0.0.1:" + ports[1], "--private-key=" + nodeA[0],
			"--certificate=" + nodeA[1], "--ca-cert=" + nodeA[2]}, args...)...)
	}
	// Chassis node-b, as its own ovn-controller would have made it.
	require.Eventually(t, func() bool { _, err := admin("chassis-add", "node-b", "geneve", "192.0.2.2"); return err == nil },
		30*time.Second, 200*time.Millisecond, "the Southbound never takes writes over its unix socket")
	// node-a's own chassis: allowed once the listener and northd's RBAC_Role are there.
	var last string
	require.Eventually(t, func() bool {
		last, err = asA("--may-exist", "chassis-add", "node-a", "geneve", "192.0.2.1")
		return err == nil
	}, 60*time.Second, 250*time.Millisecond, "node-a never creates its own chassis over ssl: %s\n%s", last, logs(dir))
	out, err := asA("set", "chassis", "node-a", "external_ids:sdncni-test=own")
	require.NoError(t, err, "a node updates its own chassis: %s", out)
	out, err = asA("set", "encap", encapOf(t, admin, "node-a"), "options:csum=true")
	require.NoError(t, err, "a node updates its own encap: %s", out)

	for _, c := range []struct {
		why  string
		args []string
	}{
		{"modify another node's chassis", []string{"set", "chassis", "node-b", "external_ids:evil=1"}},
		{"steal another node's chassis name", []string{"set", "chassis", "node-b", "hostname=node-a"}},
		{"modify another node's encap (its tunnel address)", []string{"set", "encap", encapOf(t, admin, "node-b"), "ip=192.0.2.1"}},
		{"delete another node's chassis", []string{"chassis-del", "node-b"}},
		{"create a chassis of another name", []string{"chassis-add", "node-c", "geneve", "192.0.2.3"}},
	} {
		out, err := asA(c.args...)
		require.Error(t, err, "node-a may %s: %s", c.why, out)
		require.Contains(t, out, "RBAC", "node-a: %s refused for another reason: %s", c.why, out)
	}
	conn, err := admin("get-connection")
	require.NoError(t, err)
	require.Contains(t, conn, `role="ovn-controller"`, "the nodes' listener has the ovn-controller role")
	got, err := admin("--bare", "--columns=external_ids,hostname", "find", "chassis", "name=node-b")
	require.NoError(t, err)
	require.NotContains(t, got, "evil")
	require.NotContains(t, got, "node-a")
	names, err := admin("--bare", "--columns=name", "list", "chassis")
	require.NoError(t, err)
	require.NotContains(t, names, "node-c")
	require.Contains(t, names, "node-b")
}

// runDBScript writes the run-db.sh of deploy/ovn-central/statefulset.yaml's ConfigMap
// to a file and returns its path.
func runDBScript(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "deploy", "ovn-central", "statefulset.yaml"))
	require.NoError(t, err)
	for _, doc := range bytes.Split(raw, []byte("\n---\n")) {
		var cm corev1.ConfigMap
		if yaml.Unmarshal(doc, &cm) == nil && cm.Kind == "ConfigMap" && cm.Data["run-db.sh"] != "" {
			p := filepath.Join(t.TempDir(), "run-db.sh")
			require.NoError(t, os.WriteFile(p, []byte(cm.Data["run-db.sh"]), 0o700))
			return p
		}
	}
	t.Fatal("no run-db.sh in deploy/ovn-central/statefulset.yaml")
	return ""
}

// nodeFiles makes cn's key and request as a node does, signs it as the cluster role
// does, and writes key, certificate and CA into dir; it returns their paths.
func nodeFiles(t *testing.T, ca pki.Pair, cn, dir string, now time.Time) [3]string {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o700))
	key, reqPEM, err := pki.NewNodeRequest(cn)
	require.NoError(t, err)
	csr := csrFor(cn, reqPEM)
	req, err := pki.CheckNodeRequest(csr, "system:serviceaccount:sdncni-system:sdncni-node")
	require.NoError(t, err)
	cert, err := pki.SignNode(ca, req, nil, time.Hour, now)
	require.NoError(t, err)
	write(t, dir, "tls.key", key)
	write(t, dir, "tls.crt", cert)
	write(t, dir, "ca.crt", ca.Cert)
	return [3]string{filepath.Join(dir, "tls.key"), filepath.Join(dir, "tls.crt"), filepath.Join(dir, "ca.crt")}
}

func encapOf(t *testing.T, admin func(...string) (string, error), chassis string) string {
	t.Helper()
	out, err := admin("--bare", "--columns=_uuid", "find", "encap", "chassis_name="+chassis)
	require.NoError(t, err, out)
	id := strings.TrimSpace(out)
	require.NotEmpty(t, id, "no encap of %s", chassis)
	return id
}

func sbctl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ovn-sbctl", append([]string{"--timeout=5", "--no-leader-only"}, args...)...).CombinedOutput()
	return string(out), err
}

// start runs a daemon for the test; it is stopped (SIGTERM, then SIGKILL, by PID) at the end.
func start(t *testing.T, env []string, logFile, name string, args ...string) {
	t.Helper()
	f, err := os.Create(logFile)
	require.NoError(t, err)
	cmd := exec.Command(name, args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		// Its process group: run-db.sh's background helper with it.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		_ = f.Close()
	})
}

func waitFile(t *testing.T, p string) {
	t.Helper()
	require.Eventually(t, func() bool { _, err := os.Stat(p); return err == nil }, 20*time.Second, 50*time.Millisecond,
		"%s never appeared", p)
}

func freePorts(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		ls = append(ls, l)
		out = append(out, strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
	}
	for _, l := range ls {
		_ = l.Close()
	}
	return out
}

func write(t *testing.T, dir, name string, b []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o600))
}

func logs(dir string) string {
	var b strings.Builder
	for _, n := range []string{"nb.log", "sb.log", "northd.log"} {
		raw, _ := os.ReadFile(filepath.Join(dir, n))
		b.WriteString("== " + n + "\n" + string(raw))
	}
	return b.String()
}
