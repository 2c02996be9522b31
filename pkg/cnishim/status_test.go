package cnishim

import (
	"bytes"
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/go-logr/logr"
	"github.com/stretchr/testify/require"

	"github.com/sdncni/sdncni/pkg/cniserver"
)

func statusConf(socket, extra string) *bytes.Buffer {
	return bytes.NewBufferString(`{"cniVersion":"1.1.0","name":"n","type":"sdncni","socket":"` + socket + `"` + extra + `}`)
}

func requireCode(t *testing.T, err error, code uint) *types.Error {
	t.Helper()
	var te *types.Error
	require.True(t, errors.As(err, &te), "want a *types.Error, got %v", err)
	require.Equal(t, code, te.Code, te.Error())
	return te
}

// serveStatus runs the controller's real CNI server on a socket with the given status.
func serveStatus(t *testing.T, status cniserver.StatusFunc) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "cni.sock")
	l, err := cniserver.Listen(sock)
	require.NoError(t, err)
	srv := cniserver.New(nil, status, 5*time.Second, logr.Discard())
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return sock
}

func TestRunStatus(t *testing.T) {
	sock := serveStatus(t, func(context.Context) error { return nil })
	require.NoError(t, RunStatus(statusConf(sock, ""), &bytes.Buffer{}))

	degraded := serveStatus(t, func(context.Context) error {
		return types.NewError(types.ErrLimitedConnectivity, "datapath degraded", "")
	})
	te := requireCode(t, RunStatus(statusConf(degraded, ""), &bytes.Buffer{}), types.ErrLimitedConnectivity)
	require.Equal(t, "datapath degraded", te.Msg)

	_ = requireCode(t, RunStatus(bytes.NewBufferString(`{"cniVersion":"1.0.0","name":"n"}`), &bytes.Buffer{}), types.ErrIncompatibleCNIVersion)
	_ = requireCode(t, RunStatus(bytes.NewBufferString(`{"cniVersion":"9.0.0","name":"n"}`), &bytes.Buffer{}), types.ErrIncompatibleCNIVersion)
	_ = requireCode(t, RunStatus(bytes.NewBufferString(`{`), &bytes.Buffer{}), types.ErrDecodingFailure)
	_ = requireCode(t, RunStatus(statusConf("relative", ""), &bytes.Buffer{}), types.ErrInvalidNetworkConfig)
}

// TestStatusUnreachable: a controller that is not there is said to be unreachable, once,
// with the socket that was tried.
func TestStatusUnreachable(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "absent.sock")
	te := requireCode(t, RunStatus(statusConf(sock, ""), &bytes.Buffer{}), types.ErrPluginNotAvailable)
	msg := te.Error()
	require.Equal(t, 1, strings.Count(msg, "not reachable"), msg)
	require.Equal(t, 1, strings.Count(msg, sock), msg)
	require.NotContains(t, msg, "http://", "the client's internal URL is noise")
}

// TestStatusSlowController: a controller that accepts the connection and never answers is
// reported as not answering (not as unreachable), after the short STATUS deadline rather
// than the 30 s one of ADD.
func TestStatusSlowController(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "stuck.sock")
	l, err := net.Listen("unix", sock)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = c.Close() }) // hold it open, never answer
		}
	}()

	start := time.Now()
	te := requireCode(t, RunStatus(statusConf(sock, ""), &bytes.Buffer{}), types.ErrPluginNotAvailable)
	took := time.Since(start)
	require.Contains(t, te.Msg, "did not answer STATUS within "+StatusTimeout.String())
	require.NotContains(t, te.Error(), "not reachable")
	require.Less(t, took, DefaultTimeout/2, "STATUS waited for the ADD timeout")

	// A configured timeout shorter than StatusTimeout wins.
	te = requireCode(t, RunStatus(statusConf(sock, `,"timeout":"500ms"`), &bytes.Buffer{}), types.ErrPluginNotAvailable)
	require.Contains(t, te.Msg, "within 500ms")
}
