package ovs_test

import (
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

	"github.com/go-logr/logr"
	"github.com/stretchr/testify/require"

	"github.com/sdncni/sdncni/internal/testenv"
	"github.com/sdncni/sdncni/pkg/ovs"
	"github.com/sdncni/sdncni/pkg/pki"
)

// TestNorthboundTLS: a real ovsdb-server serves OVN_Northbound on pssl: only, with
// certificates from pkg/pki. A node's client certificate connects (and reads); an ssl:
// endpoint without TLS files and TLS files on a tcp: endpoint are refused before
// dialling; a client certificate of another CA is refused by the server; plain TCP to
// the TLS port gets no database; a server holding a client-only certificate (what every
// node has) is refused by our client.
func TestNorthboundTLS(t *testing.T) {
	testenv.RequireCommands(t, "ovsdb-server", "ovsdb-tool")
	dir := t.TempDir()
	now := time.Now()
	ca, err := pki.NewCA("test-ca", 24*time.Hour, now)
	require.NoError(t, err)
	srvPair, err := pki.Issue(ca, "ovn-central", pki.Server, time.Hour, now)
	require.NoError(t, err)
	cliPair, err := pki.Issue(ca, "sdncni-node", pki.Client, time.Hour, now)
	require.NoError(t, err)
	otherCA, err := pki.NewCA("other-ca", 24*time.Hour, now)
	require.NoError(t, err)
	strangerPair, err := pki.Issue(otherCA, "stranger", pki.Client, time.Hour, now)
	require.NoError(t, err)
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, b, 0o600))
		return p
	}
	caFile := write("ca.crt", ca.Cert)
	good := ovs.TLS{Key: write("cli.key", cliPair.Key), Cert: write("cli.crt", cliPair.Cert), CA: caFile}
	stranger := ovs.TLS{Key: write("s.key", strangerPair.Key), Cert: write("s.crt", strangerPair.Cert), CA: caFile}

	endpoint := startTLSNorthbound(t, dir, write("srv.key", srvPair.Key), write("srv.crt", srvPair.Cert), caFile)
	ctx := func() context.Context {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		t.Cleanup(cancel)
		return c
	}

	n, err := ovs.NewNorthbound(ctx(), endpoint, logr.Discard(), ovs.WithTLS(good))
	require.NoError(t, err, "the node's client certificate must connect")
	require.True(t, n.Connected())
	n.Close()

	_, err = ovs.NewNorthbound(ctx(), endpoint, logr.Discard())
	require.ErrorContains(t, err, "needs a key, certificate and CA")
	_, err = ovs.NewNorthbound(ctx(), strings.Replace(endpoint, "ssl:", "tcp:", 1), logr.Discard(), ovs.WithTLS(good))
	require.ErrorContains(t, err, "not an ssl: one")

	_, err = ovs.NewNorthbound(ctx(), endpoint, logr.Discard(), ovs.WithTLS(stranger))
	require.Error(t, err, "a client certificate of another CA must be refused by the server")

	_, err = ovs.NewNorthbound(ctx(), strings.Replace(endpoint, "ssl:", "tcp:", 1), logr.Discard())
	require.Error(t, err, "plain TCP to the TLS port must not reach the database")

	// A server with a client-only certificate: what a compromised node could present.
	impostor := startTLSNorthbound(t, filepath.Join(dir, "impostor"), good.Key, good.Cert, caFile)
	_, err = ovs.NewNorthbound(ctx(), impostor, logr.Discard(), ovs.WithTLS(good))
	require.ErrorContains(t, err, "server certificate", "a client certificate must not serve as the database")
}

// startTLSNorthbound runs ovsdb-server with an empty OVN_Northbound in dir, listening
// only on pssl: on loopback, and returns its ssl: endpoint.
func startTLSNorthbound(t *testing.T, dir, key, cert, ca string) string {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o700))
	db := filepath.Join(dir, "nb.db")
	out, err := exec.Command("ovsdb-tool", "create", db, "/usr/share/ovn/ovn-nb.ovsschema").CombinedOutput()
	require.NoError(t, err, string(out))
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command("ovsdb-server", db, "--remote=pssl:"+strconv.Itoa(port)+":127.0.0.1",
		"--private-key="+key, "--certificate="+cert, "--ca-cert="+ca,
		"--unixctl="+filepath.Join(dir, "ctl"), "--pidfile="+filepath.Join(dir, "pid"),
		"--log-file="+filepath.Join(dir, "log"), "--no-chdir")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	require.Eventually(t, func() bool {
		c, err := net.DialTimeout("tcp4", "127.0.0.1:"+strconv.Itoa(port), 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, 10*time.Second, 50*time.Millisecond, "ovsdb-server listens")
	return "ssl:127.0.0.1:" + strconv.Itoa(port)
}
