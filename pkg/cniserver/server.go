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

	netns       netnsPolicy
	maxBody     int64
	readTimeout time.Duration
	maxInFlight int
	queueWait   time.Duration
	limit       *limiter
}

// New returns a server; timeout bounds one request (the shim has its own bound too).
// Without options it accepts CNI_NETNS under DefaultNetnsPrefixes and applies the
// Default… bounds.
func New(mgr Manager, status StatusFunc, timeout time.Duration, log logr.Logger, opts ...Option) *Server {
	s := &Server{mgr: mgr, status: status, log: log, timeout: timeout,
		netns: newNetnsPolicy(DefaultNetnsPrefixes), maxBody: DefaultMaxBody, readTimeout: DefaultReadTimeout,
		maxInFlight: DefaultMaxInFlight, queueWait: DefaultQueueWait}
	for _, o := range opts {
		o(s)
	}
	s.limit = newLimiter(s.maxInFlight, s.queueWait)
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+cniapi.PathCNI, s.handleCNI)
	mux.HandleFunc("POST "+cniapi.PathStatus, s.handleStatus)
	s.http = &http.Server{Handler: mux,
		ReadHeaderTimeout: s.readTimeout,
		ReadTimeout:       s.readTimeout,
		// The handler's time counts: a request may wait for a slot, then run for timeout.
		WriteTimeout: s.readTimeout + s.queueWait + timeout + 5*time.Second,
		IdleTimeout:  s.readTimeout,
	}
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
	var req cniapi.Request
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	if tooBig, ok := errors.AsType[*http.MaxBytesError](err); ok {
		resp := &cniapi.Response{Error: types.NewError(types.ErrInvalidNetworkConfig,
			fmt.Sprintf("request too large: over %d bytes", tooBig.Limit),
			"the network configuration and CNI_ARGS of one command must fit in the limit")}
		s.log.Info("cni request refused", "code", resp.Error.Code, "msg", resp.Error.Msg)
		writeJSON(w, resp)
		return
	}
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	if err != nil {
		writeJSON(w, &cniapi.Response{Error: types.NewError(types.ErrDecodingFailure, "decode request", err.Error())})
		return
	}
	start := time.Now()
	var resp *cniapi.Response
	release, terr := s.limit.acquire(r.Context(), req.Command)
	if terr != nil {
		resp = &cniapi.Response{Error: terr}
	} else {
		ctx, cancel := context.WithTimeout(r.Context(), s.timeout)
		resp = s.dispatch(ctx, &req)
		cancel()
		release()
	}
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
	if terr := s.checkNetns(req.Command, &ar); terr != nil {
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

// checkNetns refuses ADD and CHECK whose CNI_NETNS the policy does not allow (code 4).
// DEL never enters the namespace and must succeed when it is gone or bogus (the spec's
// best effort): it forgets the path and goes on cleaning up by container ID and ifname.
func (s *Server) checkNetns(cmd string, ar *attach.Request) *types.Error {
	if ar.Netns == "" || (cmd != "ADD" && cmd != "CHECK" && cmd != "DEL") {
		return nil // attachRequest required it where it is needed; unknown commands fail later
	}
	err := s.netns.check(ar.Netns)
	if err == nil {
		return nil
	}
	if cmd == "DEL" {
		s.log.V(1).Info("DEL: ignoring CNI_NETNS", "containerID", ar.ContainerID, "reason", err.Error())
		ar.Netns = ""
		return nil
	}
	return types.NewError(types.ErrInvalidEnvironmentVariables, "invalid CNI_NETNS", err.Error())
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
