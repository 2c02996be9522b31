package cniserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/go-logr/logr"

	"github.com/sdncni/sdncni/pkg/attach"
	"github.com/sdncni/sdncni/pkg/cniapi"
)

// Manager is what the server needs of the attachment manager.
type Manager interface {
	Add(ctx context.Context, r attach.Request) (*current.Result, error)
	Del(ctx context.Context, r attach.Request) error
	Check(ctx context.Context, r attach.Request) error
	GC(ctx context.Context, valid []attach.Key) error
}

var _ Manager = (*attach.Manager)(nil)

// StatusFunc reports whether the node can serve ADD; a non-nil *types.Error is passed on
// as is (50 or 51), any other error becomes 50.
type StatusFunc func(ctx context.Context) error

// Server serves the CNI protocol.
type Server struct {
	mgr     Manager
	status  StatusFunc
	log     logr.Logger
	timeout time.Duration
	http    *http.Server
}

// New returns a server; timeout bounds one request (the shim has its own bound too).
func New(mgr Manager, status StatusFunc, timeout time.Duration, log logr.Logger) *Server {
	s := &Server{mgr: mgr, status: status, log: log, timeout: timeout}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+cniapi.PathCNI, s.handleCNI)
	mux.HandleFunc("POST "+cniapi.PathStatus, s.handleStatus)
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return s
}

// Listen creates the unix socket (replacing a stale one) readable only by root.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("create socket dir: %w", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale socket: %w", err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("chmod socket: %w", err)
	}
	return l, nil
}

// Serve serves on l until Shutdown.
func (s *Server) Serve(l net.Listener) error {
	if err := s.http.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops accepting requests and waits for those in flight.
func (s *Server) Shutdown(ctx context.Context) error { return s.http.Shutdown(ctx) }

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.timeout)
	defer cancel()
	resp := &cniapi.Response{}
	if err := s.status(ctx); err != nil {
		var te *types.Error
		if !errors.As(err, &te) {
			te = types.NewError(types.ErrPluginNotAvailable, "sdncni not ready", err.Error())
		}
		resp.Error = te
	}
	writeJSON(w, resp)
}

func (s *Server) handleCNI(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.timeout)
	defer cancel()
	var req cniapi.Request
	body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	if err != nil {
		writeJSON(w, &cniapi.Response{Error: types.NewError(types.ErrDecodingFailure, "decode request", err.Error())})
		return
	}
	start := time.Now()
	resp := s.dispatch(ctx, &req)
	log := s.log.WithValues("cmd", req.Command, "containerID", req.ContainerID, "ifname", req.IfName,
		"netns", req.Netns, "duration", time.Since(start).Round(time.Microsecond))
	if resp.Error != nil {
		log.Info("cni request failed", "code", resp.Error.Code, "msg", resp.Error.Msg, "details", resp.Error.Details)
	} else {
		log.V(1).Info("cni request")
	}
	writeJSON(w, resp)
}

func (s *Server) dispatch(ctx context.Context, req *cniapi.Request) *cniapi.Response {
	if req.Command == "GC" {
		valid, err := validAttachments(req.Config)
		if err != nil {
			return &cniapi.Response{Error: types.NewError(types.ErrInvalidNetworkConfig, "invalid GC attachments", err.Error())}
		}
		if err := s.mgr.GC(ctx, valid); err != nil {
			return &cniapi.Response{Error: toCNIError("gc", err)}
		}
		return &cniapi.Response{}
	}
	ar, terr := attachRequest(req)
	if terr != nil {
		return &cniapi.Response{Error: terr}
	}
	switch req.Command {
	case "ADD":
		res, err := s.mgr.Add(ctx, ar)
		if err != nil {
			return &cniapi.Response{Error: toCNIError("add", err)}
		}
		data, err := json.Marshal(res)
		if err != nil {
			return &cniapi.Response{Error: toCNIError("encode result", err)}
		}
		return &cniapi.Response{Result: data}
	case "DEL":
		if err := s.mgr.Del(ctx, ar); err != nil {
			return &cniapi.Response{Error: toCNIError("del", err)}
		}
	case "CHECK":
		if err := s.mgr.Check(ctx, ar); err != nil {
			return &cniapi.Response{Error: toCNIError("check", err)}
		}
	default:
		return &cniapi.Response{Error: types.NewError(types.ErrInvalidEnvironmentVariables,
			fmt.Sprintf("unknown CNI_COMMAND %q", req.Command), "")}
	}
	return &cniapi.Response{}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
