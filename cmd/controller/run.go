package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sdncni/sdncni/internal/version"
	"github.com/sdncni/sdncni/pkg/attach"
	"github.com/sdncni/sdncni/pkg/cniserver"
	"github.com/sdncni/sdncni/pkg/crossnode"
	"github.com/sdncni/sdncni/pkg/datapath"
	"github.com/sdncni/sdncni/pkg/gateway"
	"github.com/sdncni/sdncni/pkg/ipam"
	"github.com/sdncni/sdncni/pkg/metrics"
	"github.com/sdncni/sdncni/pkg/ovs"
	"github.com/sdncni/sdncni/pkg/podnet"
	"github.com/sdncni/sdncni/pkg/tunnelneigh"
	"github.com/sdncni/sdncni/pkg/vpn"
)

// blockReleaseInterval is how often a node looks for empty blocks to give back.
const blockReleaseInterval = time.Minute

// tunnelNeighInterval is how often a netdev node checks its tunnel peers' next hops:
// a new peer's, or one whose link ovs-vswitchd re-created, is resolved within it.
const tunnelNeighInterval = 5 * time.Second

func newLogger(verbosity int) logr.Logger {
	level := slog.Level(-verbosity)
	return logr.FromSlogHandler(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

func run(ctx context.Context, o *options) error {
	log := newLogger(o.verbosity)
	log.Info("starting", "version", version.Version, "role", o.role, "node", o.nodeName, "network", o.network, "cidr", o.cidr,
		"fastPath", o.fastPath, "socket", o.socket)

	startCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if o.teardown {
		return teardown(startCtx, o, log)
	}
	if o.role == roleCluster {
		return runCluster(ctx, o, log)
	}
	if o.nodeCertDir != "" {
		if err := ensureNodeCert(ctx, o, log); err != nil {
			return err
		}
	}

	vs, err := ovs.NewVSwitch(startCtx, o.ovsDB, log.WithName("ovsdb"))
	if err != nil {
		return fmt.Errorf("connect to ovsdb: %w", err)
	}
	defer vs.Close()
	if err := vs.EnsureBridge(startCtx, o.bridge, o.datapathType); err != nil {
		return err
	}
	// Its own deadline: it may wait --encap-ip-wait for ovn-controller's container.
	topoCtx, topoCancel := context.WithTimeout(ctx, o.encapWait+30*time.Second)
	err = resolveTopology(topoCtx, o, vs, log)
	topoCancel()
	if err != nil {
		return err
	}
	nb, err := connectNorthbound(startCtx, o, log)
	if err != nil {
		return err
	}
	defer nb.Close()
	store, err := ipam.Open(startCtx, o.ipamStore)
	if err != nil {
		return fmt.Errorf("open address store: %w", err)
	}
	defer store.Close()
	dp, err := datapath.Open(startCtx, datapath.Config{PinDir: o.pinDir}, log.WithName("datapath"))
	if err != nil {
		return fmt.Errorf("open datapath: %w", err)
	}
	defer dp.Close()
	if err := dp.SetFastPath(startCtx, o.fastPath); err != nil {
		return err
	}
	if o.txOffloadOff {
		// The taps into OVS get their offloads back whenever ovs-vswitchd restarts.
		ours := func(name string) bool {
			return strings.HasPrefix(name, attach.OVSIfPrefix) || strings.HasPrefix(name, gateway.PortPrefix)
		}
		if err := podnet.KeepTxOffloadOff(ctx, ours, log.WithName("offload")); err != nil {
			return err
		}
	}
	if o.datapathType == "netdev" {
		// The userspace datapath drops a tunnel packet whose next hop it has not
		// learned yet: keep every Geneve peer's next hop resolved (pkg/tunnelneigh).
		go tunnelneigh.New(vs.TunnelRemotes).Run(ctx, tunnelNeighInterval, log.WithName("tunnelneigh"))
	}
	peers, err := startCrossNode(startCtx, o, dp, log.WithName("crossnode"))
	if err != nil {
		return err
	}
	if peers != nil {
		go peers.Run(ctx)
	}

	var (
		networks  attach.Networks
		podPolicy attach.PodPolicy
		releaser  *vpn.BlockReleaser
	)
	if o.kubeconfig != "" {
		// The manager lives as long as the controller, not the start-up deadline.
		kn, pp, rel, err := kubeMode(ctx, o, vs, nb, store, dp, peers, log)
		if err != nil {
			return err
		}
		networks, podPolicy, releaser = kn, pp, rel
	} else {
		sn, err := buildNetworks(o)
		if err != nil {
			return err
		}
		for _, n := range sn.All() {
			if err := dp.SetVPNFastPath(startCtx, n.ID, n.FastPath); err != nil {
				return err
			}
		}
		networks = sn
	}
	mgr := attach.New(attach.Config{Bridge: o.bridge, NodeName: o.nodeName, OVNWait: o.ovnWait,
		TxOffloadOff: o.txOffloadOff},
		attach.Deps{VSwitch: vs, Northbound: nb, IPAM: store, Datapath: dp, Networks: networks, Policy: podPolicy},
		log.WithName("attach"))
	if o.kubeconfig == "" {
		// With VPNs the cluster role realises networks in OVN.
		if err := mgr.EnsureNetworks(startCtx); err != nil {
			return err
		}
	}
	// Not startCtx: informer sync may have used it up. Reconcile bounds each attachment
	// and its own retries, and never removes a pod over an error that may pass.
	rep, err := mgr.Reconcile(ctx)
	if err != nil {
		log.Error(err, "reconcile incomplete")
	}
	log.Info("reconciled", "kept", rep.Kept, "repaired", rep.Repaired, "removed", rep.Removed,
		"pending", len(rep.Pending), "unlisted", rep.Unlisted)
	go func(rep attach.ReconcileReport) {
		if !rep.Done() {
			rep = mgr.RetryPending(ctx, rep)
		}
		// Only now does the store hold every running pod's address: before, a block a
		// pod still uses could look empty.
		if releaser != nil && rep.Done() {
			releaser.Run(ctx, blockReleaseInterval)
		}
	}(rep)

	if o.metricsAddr != "" {
		reg := prometheus.NewRegistry()
		if err := registerPolicyDrops(ctx, o, vs, nb, reg, log); err != nil {
			return err
		}
		reg.MustRegister(metrics.NewPolicyHandoffCollector(dp, vpnNames(networks)))
		stopMetrics, err := serveMetrics(o.metricsAddr, reg, dp, statusFunc(vs, nb), log)
		if err != nil {
			return err
		}
		defer stopMetrics()
	}

	srv := cniserver.New(mgr, statusFunc(vs, nb), o.reqTimeout, log.WithName("cni"),
		cniserver.WithNetnsPrefixes(o.netnsDirs))
	l, err := cniserver.Listen(o.socket)
	if err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	log.Info("serving CNI", "socket", o.socket)

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down; pods and fast-path pins stay in place")
	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	_ = os.Remove(o.socket)
	return nil
}

// statusFunc answers CNI STATUS: ready when both databases are connected.
func statusFunc(vs *ovs.VSwitch, nb *ovs.Northbound) cniserver.StatusFunc {
	return func(ctx context.Context) error {
		var errs []error
		if !vs.Connected() {
			errs = append(errs, errors.New("local ovsdb not connected"))
		}
		if !nb.Connected() {
			errs = append(errs, errors.New("ovn northbound not connected"))
		}
		return errors.Join(errs...)
	}
}

// serveMetrics serves /metrics, and the probes: /healthz (the process serves) and
// /readyz (ready answers 200 when the node can serve ADD, 503 with the reason if not).
func serveMetrics(addr string, reg *prometheus.Registry, dp *datapath.Datapath, ready cniserver.StatusFunc, log logr.Logger) (func(), error) {
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		metrics.NewDatapathCollector(dp))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := ready(ctx); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second}
	go func() { _ = hs.Serve(l) }()
	log.Info("serving metrics", "addr", l.Addr().String())
	return func() { _ = hs.Close() }, nil
}

// teardown removes every fast-path object of this node. Pods still running lose
// connectivity (their traffic has no way into OVS without the programs).
func teardown(ctx context.Context, o *options, log logr.Logger) error {
	dp, err := datapath.Open(ctx, datapath.Config{PinDir: o.pinDir}, log.WithName("datapath"))
	if err != nil {
		return fmt.Errorf("open datapath: %w", err)
	}
	if err := dp.Teardown(ctx); err != nil {
		return fmt.Errorf("teardown: %w", err)
	}
	if o.crossNodeDev != "" {
		if err := crossnode.DeleteDevice(o.crossNodeDev); err != nil {
			return fmt.Errorf("teardown: %w", err)
		}
	}
	if err := gateway.DeleteNetfilter(); err != nil {
		return fmt.Errorf("teardown: %w", err)
	}
	if err := gateway.DeleteRules(); err != nil {
		return fmt.Errorf("teardown: %w", err)
	}
	log.Info("fast path removed", "pinDir", o.pinDir)
	return nil
}

// connectNorthbound connects to --nb-db, over TLS with the --ovn-tls-* files if given.
func connectNorthbound(ctx context.Context, o *options, log logr.Logger) (*ovs.Northbound, error) {
	var opts []ovs.ConnOption
	if o.nbTLS.Enabled() {
		opts = append(opts, ovs.WithTLS(o.nbTLS))
	}
	nb, err := ovs.NewNorthbound(ctx, o.nbDB, log.WithName("nbdb"), opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to ovn northbound: %w", err)
	}
	return nb, nil
}
