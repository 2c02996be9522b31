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
)

// ErrUnreachable wraps every failure to reach the controller (socket missing, connection
// refused, timeout before an answer). The shim maps it to CNI code 11 (try again later),
// or 50 for STATUS.
var ErrUnreachable = errors.New("sdncni-controller not reachable")

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

// Do sends req and returns the controller's response. A transport failure is returned
// wrapped in ErrUnreachable; a CNI error from the controller is returned in Response.Error
// with a nil error.
func (c *Client) Do(ctx context.Context, req *Request) (*Response, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	return c.post(ctx, PathCNI, body)
}

// Status asks the controller whether it is ready to serve ADD.
func (c *Client) Status(ctx context.Context) (*Response, error) {
	return c.post(ctx, PathStatus, []byte("{}"))
}

func (c *Client) post(ctx context.Context, path string, body []byte) (*Response, error) {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://sdncni"+path, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	hresp, err := c.http.Do(hreq)
	if err != nil {
		return nil, fmt.Errorf("%w at %s: %w", ErrUnreachable, c.socket, err)
	}
	defer hresp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(hresp.Body, 4<<20))
	if err != nil {
		return nil, fmt.Errorf("%w at %s: read response: %w", ErrUnreachable, c.socket, err)
	}
	var resp Response
	if err := json.Unmarshal(data, &resp); err != nil {
		return nil, fmt.Errorf("decode controller response (HTTP %d): %w", hresp.StatusCode, err)
	}
	return &resp, nil
}
