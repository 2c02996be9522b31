package cniapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"sync/atomic"
)

// Sentinel errors of a request that got no answer. Callers branch on them with errors.Is:
// an unreachable controller is down (no socket, connection refused); a controller that
// took the connection but did not answer before the caller's deadline is busy or stuck,
// which a runtime should hear differently.
var (
	ErrUnreachable = errors.New("sdncni-controller not reachable")
	ErrNoAnswer    = errors.New("sdncni-controller did not answer in time")
)

// TransportError is a request that got no answer from the controller. It matches
// ErrUnreachable or ErrNoAnswer (errors.Is); Err is the cause, which names the socket.
type TransportError struct {
	// Connected reports that the connection was made and the answer was missing.
	Connected bool
	Err       error
}

func (e *TransportError) Error() string {
	return e.sentinel().Error() + ": " + e.Err.Error()
}

func (e *TransportError) Unwrap() []error { return []error{e.sentinel(), e.Err} }

func (e *TransportError) sentinel() error {
	if e.Connected {
		return ErrNoAnswer
	}
	return ErrUnreachable
}

// Client talks to the controller over its unix socket.
type Client struct {
	socket string
	http   *http.Client
}

// NewClient returns a client for the controller listening on socket.
func NewClient(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		DisableKeepAlives: true,
	}
	return &Client{socket: socket, http: &http.Client{Transport: tr}}
}

// Do sends req and returns the controller's response. A request that got no answer
// returns a *TransportError (ErrUnreachable or ErrNoAnswer); a CNI error from the
// controller is returned in Response.Error with a nil error.
func (c *Client) Do(ctx context.Context, req *Request) (*Response, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	return c.post(ctx, PathCNI, body)
}

// Status asks the controller whether it is ready to serve ADD. Errors as for Do.
func (c *Client) Status(ctx context.Context) (*Response, error) {
	return c.post(ctx, PathStatus, []byte("{}"))
}

func (c *Client) post(ctx context.Context, path string, body []byte) (*Response, error) {
	var connected atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) { connected.Store(true) },
	})
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://sdncni"+path, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	hresp, err := c.http.Do(hreq)
	if err != nil {
		return nil, c.transportError(connected.Load(), err)
	}
	defer hresp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(hresp.Body, 4<<20))
	if err != nil {
		return nil, c.transportError(true, fmt.Errorf("read response: %w", err))
	}
	var resp Response
	if err := json.Unmarshal(data, &resp); err != nil {
		return nil, fmt.Errorf("decode controller response (HTTP %d): %w", hresp.StatusCode, err)
	}
	return &resp, nil
}

// transportError drops net/http's "Post \"http://sdncni/v1/cni\": " prefix, which names
// a URL that exists only inside this client, and says which socket was tried where the
// cause does not already (a dial error does).
func (c *Client) transportError(connected bool, err error) error {
	if uerr, ok := errors.AsType[*url.Error](err); ok {
		err = uerr.Err
	}
	if connected {
		err = fmt.Errorf("connected to %s: %w", c.socket, err)
	} else if _, isOp := errors.AsType[*net.OpError](err); !isOp {
		err = fmt.Errorf("%s: %w", c.socket, err)
	}
	return &TransportError{Connected: connected, Err: err}
}
