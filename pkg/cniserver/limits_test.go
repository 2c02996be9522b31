package cniserver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/stretchr/testify/require"

	"github.com/sdncni/sdncni/pkg/cniapi"
)

// TestOversizeBody: a body over the limit is refused with code 7 saying so, not
// answered with the decoding error of a truncated JSON document.
func TestOversizeBody(t *testing.T) {
	mgr := &recordingManager{}
	sock := serve(t, mgr, WithMaxBody(64<<10))
	big := `{"cniVersion":"1.1.0","name":"n","type":"sdncni","pad":"` + strings.Repeat("x", 128<<10) + `"}`
	resp := do(t, sock, &cniapi.Request{Command: "DEL", ContainerID: "c1", IfName: "eth0", Config: []byte(big)})
	require.NotNil(t, resp.Error)
	require.Equal(t, uint(types.ErrInvalidNetworkConfig), resp.Error.Code, resp.Error.Error())
	require.Contains(t, resp.Error.Msg, "request too large")
	_, _, n := mgr.last()
	require.Zero(t, n, "an oversize request must not reach the manager")

	// Just under the limit still passes.
	ok := `{"cniVersion":"1.1.0","name":"n","type":"sdncni","pad":"` + strings.Repeat("x", 60<<10) + `"}`
	resp = do(t, sock, &cniapi.Request{Command: "DEL", ContainerID: "c1", IfName: "eth0", Config: []byte(ok)})
	require.Nil(t, resp.Error)
}

// TestStalledBody: a client that sends headers and part of the body and then stalls is
// cut off after the read timeout instead of holding a handler forever.
func TestStalledBody(t *testing.T) {
	sock := serve(t, &recordingManager{}, WithReadTimeout(300*time.Millisecond))
	c, err := net.Dial("unix", sock)
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write([]byte("POST " + cniapi.PathCNI + " HTTP/1.1\r\nHost: sdncni\r\nContent-Type: application/json\r\n" +
		"Content-Length: 1000\r\n\r\n{\"command\":"))
	require.NoError(t, err)
	start := time.Now()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	// The server answers (a decoding error) and closes, or just closes; either way the
	// read returns long before our own deadline.
	_, _ = bufio.NewReader(c).ReadString(0)
	require.Less(t, time.Since(start), 3*time.Second, "the server kept a stalled request open")
}

// TestConcurrencyBound: with every DEL slot taken, one more DEL is answered with code 11
// after the queue wait instead of piling up; other commands have slots of their own, and
// a freed slot is used again.
func TestConcurrencyBound(t *testing.T) {
	mgr := &recordingManager{block: make(chan struct{})}
	sock := serve(t, mgr, WithMaxInFlight(2, 200*time.Millisecond))
	del := &cniapi.Request{Command: "DEL", ContainerID: "c1", IfName: "eth0"}

	done := make(chan *cniapi.Response, 2)
	for range 2 {
		go func() { done <- do(t, sock, del) }()
	}
	require.Eventually(t, func() bool { _, _, n := mgr.last(); return n == 2 }, 5*time.Second, 10*time.Millisecond)

	start := time.Now()
	resp := do(t, sock, del)
	require.NotNil(t, resp.Error, "a third DEL must not wait for a slot forever")
	require.Equal(t, uint(types.ErrTryAgainLater), resp.Error.Code, resp.Error.Error())
	require.Contains(t, resp.Error.Msg, "too many concurrent DEL requests")
	require.Less(t, time.Since(start), 3*time.Second)
	_, _, n := mgr.last()
	require.Equal(t, 2, n, "the refused DEL must not reach the manager")

	resp = do(t, sock, &cniapi.Request{Command: "GC", Config: []byte(`{}`)})
	require.Nil(t, resp.Error, "GC has a slot of its own")

	close(mgr.block)
	for range 2 {
		r := <-done
		require.Nil(t, r.Error)
	}
	resp = do(t, sock, del)
	require.Nil(t, resp.Error, "freed slots are used again")
}

// TestDecodeErrorStillCode6: a body that is not JSON keeps its decoding-failure code.
func TestDecodeErrorStillCode6(t *testing.T) {
	sock := serve(t, &recordingManager{})
	cl := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	hr, err := cl.Post("http://sdncni"+cniapi.PathCNI, "application/json", bytes.NewBufferString("{"))
	require.NoError(t, err)
	defer hr.Body.Close()
	var resp cniapi.Response
	require.NoError(t, json.NewDecoder(hr.Body).Decode(&resp))
	require.NotNil(t, resp.Error)
	require.Equal(t, uint(types.ErrDecodingFailure), resp.Error.Code)
}
