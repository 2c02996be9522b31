package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// What one sdncni-controller process runs (--role). The node role and the cluster role
// hold different credentials in deploy/ (docs/deploy.md, "RBAC"): a node cannot write
// VPNs, VPN ids or the leader lease, the cluster role touches no node's datapath.
const (
	// roleAll runs both under one identity: the local demo, dev env and test harnesses.
	roleAll = "all"
	// roleNode runs the CNI server, the datapath and the node's reconcilers (no leader
	// election, no cluster reconcilers).
	roleNode = "node"
	// roleCluster runs only the leader-elected reconcilers, with OVN NB and no OVS, CNI
	// or datapath, and creates the default VPN.
	roleCluster = "cluster"
)

// runCluster is --role=cluster: until ctx ends, the leader-elected VPN and Service
// reconcilers against OVN NB.
func runCluster(ctx context.Context, o *options, log logr.Logger) error {
	startCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	nb, err := connectNorthbound(startCtx, o, log)
	if err != nil {
		return err
	}
	defer nb.Close()
	mgr, cfg, scheme, err := newManager(o, true, log)
	if err != nil {
		return err
	}
	if err := setupClusterRole(mgr, o, nb, log); err != nil {
		return err
	}
	if o.signNodeCerts {
		if err := setupSigner(mgr, o, log); err != nil {
			return err
		}
	}
	direct, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return fmt.Errorf("api client: %w", err)
	}
	if err := ensureDefaultVPN(startCtx, direct, o); err != nil {
		return err
	}
	if o.metricsAddr != "" {
		stop, err := serveProbes(o.metricsAddr, func() error {
			if !nb.Connected() {
				return errors.New("ovn northbound not connected")
			}
			return nil
		}, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	log.Info("running the cluster role", "leaseNamespace", o.leaderNamespace)
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	return nil
}

// serveProbes serves /healthz (the process serves) and /readyz (ready answers 200, else
// 503 with the reason) on addr.
func serveProbes(addr string, ready func() error, log logr.Logger) (func(), error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("probes listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := ready(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second}
	go func() { _ = hs.Serve(l) }()
	log.Info("serving probes", "addr", l.Addr().String())
	return func() { _ = hs.Close() }, nil
}
