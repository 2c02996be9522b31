package main

import (
	"context"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	cnpv1 "sigs.k8s.io/network-policy-api/apis/v1beta1"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
	"github.com/sdncni/sdncni/pkg/attach"
	"github.com/sdncni/sdncni/pkg/crossnode"
	"github.com/sdncni/sdncni/pkg/datapath"
	"github.com/sdncni/sdncni/pkg/gateway"
	"github.com/sdncni/sdncni/pkg/ipam"
	"github.com/sdncni/sdncni/pkg/netpol"
	"github.com/sdncni/sdncni/pkg/ovs"
	"github.com/sdncni/sdncni/pkg/vpn"
)

// kubeMode starts the controller-runtime manager with the node role's informers (and,
// for --role=all, the leader-elected cluster role). It returns the node's Networks once
// the caches are synced, what tells the attach.Manager which pods a NetworkPolicy
// keeps off the fast path, and what gives the node's empty blocks back (nil with
// --release-empty-blocks-after=0; run it once restart reconciliation is done). With the
// cross-node path on (peers not nil), the other nodes' VPNBlocks become its candidates.
func kubeMode(ctx context.Context, o *options, vs *ovs.VSwitch, nb *ovs.Northbound, store *ipam.Store, dp *datapath.Datapath,
	peers *crossnode.Peers, log logr.Logger) (*vpn.NodeNetworks, attach.PodPolicy, *vpn.BlockReleaser, error) {
	withCluster := o.role == roleAll
	mgr, cfg, scheme, err := newManager(o, withCluster, log)
	if err != nil {
		return nil, nil, nil, err
	}
	if withCluster {
		if err := setupClusterRole(mgr, o, nb, log); err != nil {
			return nil, nil, nil, err
		}
	}
	// VPNs this node holds off the fast path (over their bound of Service endpoints).
	overrides := vpn.NewFastPathOverrides()
	if err := (&vpn.FastPathReconciler{Client: mgr.GetClient(), Datapath: dp, Recorder: mgr.GetEventRecorderFor("sdncni-controller"),
		Log: log.WithName("vpn-fastpath"), Overrides: overrides}).SetupWithManager(mgr); err != nil {
		return nil, nil, nil, err
	}
	// An empty Service-endpoint map (a new node, an upgrade) would let same-node Service
	// replies take the fast path until the first write: hold the fast path off till then.
	held, err := dp.ServiceEndpoints(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	ser := &vpn.ServiceEndpointReconciler{Cache: mgr.GetCache(), Datapath: dp, FastPath: o.fastPath,
		WaitForSync: len(held) == 0, Node: o.nodeName, Overrides: overrides,
		Recorder: mgr.GetEventRecorderFor("sdncni-controller"), Log: log.WithName("service-endpoints")}
	if err := ser.Hold(ctx); err != nil {
		return nil, nil, nil, err
	}
	if err := ser.SetupWithManager(mgr); err != nil {
		return nil, nil, nil, err
	}
	if peers != nil {
		if err := (&vpn.CrossNodeReconciler{Cache: mgr.GetCache(), Node: o.nodeName, Local: o.crossNodeIP, Peers: peers,
			Log: log.WithName("vpn-crossnode")}).SetupWithManager(mgr); err != nil {
			return nil, nil, nil, err
		}
	}
	direct, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("api client: %w", err)
	}
	// The node's gateway: management ports per VPN, forwarding and the isolation guard.
	if err := gateway.EnsureNetfilter(gateway.Filter{ServiceCIDRs: o.serviceCIDRs, ControlPlane: o.controlPlane}); err != nil {
		return nil, nil, nil, err
	}
	nodeNets := vpn.NewNodeNetworks(mgr.GetCache(), direct, o.nodeName, o.mtu, log.WithName("vpn-node"))
	nodeNets.LimitBlocks(o.limits.BlocksPerVPN, mgr.GetEventRecorderFor("sdncni-controller"))
	nodeNets.UseAddresses(store)
	gw := gateway.New(gateway.Config{Bridge: o.bridge, Node: o.nodeName, ServiceCIDRs: o.serviceCIDRs,
		ControlPlaneCIDRs: o.controlPlane, ClusterVPN: v1alpha1.DefaultVPNName, TxOffloadOff: o.txOffloadOff}, vs, nb, store, log.WithName("gateway"))
	nodeNets.OnBlock(func(ctx context.Context, net attach.Network) {
		// Only the address here, so the ADD that claimed the block is not slowed; the
		// gateway reconciler builds the port when it sees the block.
		if _, err := gw.Reserve(ctx, net); err != nil {
			log.Error(err, "reserve management address", "vpn", net.Name)
		}
	})
	gr := &gateway.Reconciler{Cache: mgr.GetCache(), API: direct, Networks: nodeNets, Gateway: gw, Node: o.nodeName,
		Recorder: mgr.GetEventRecorderFor("sdncni-controller"), Log: log.WithName("gateway")}
	if err := gr.SetupWithManager(mgr); err != nil {
		return nil, nil, nil, err
	}
	if err := (&gateway.NodeGuard{Cache: mgr.GetCache(), Gateway: gw, Log: log.WithName("node-guard")}).SetupWithManager(mgr); err != nil {
		return nil, nil, nil, err
	}
	shr := &vpn.SharedServiceReconciler{Cache: mgr.GetCache(), Networks: nodeNets, Gateway: gw, DNS: o.dnsService,
		ClusterVPN: v1alpha1.DefaultVPNName, Log: log.WithName("shared-services")}
	if err := shr.SetupWithManager(mgr); err != nil {
		return nil, nil, nil, err
	}
	var rel *vpn.BlockReleaser
	if o.releaseAfter > 0 {
		rel = &vpn.BlockReleaser{Networks: nodeNets, Addresses: store, Gateway: gw, Keep: shr.Holders, After: o.releaseAfter,
			Restore: func(ctx context.Context, name string) error {
				net, ok := nodeNets.ByName(name)
				if !ok {
					return nil // the VPN is gone or not served: no port to restore
				}
				return gr.EnsureVPN(ctx, net)
			},
			Log: log.WithName("vpn-blocks")}
	}
	// Pods a NetworkPolicy selects keep their traffic on OVS, where the ACLs are.
	isolation := &netpol.Isolation{Cache: mgr.GetCache(), ClusterPolicies: netpol.ClusterPoliciesServed(mgr.GetRESTMapper())}
	if !isolation.ClusterPolicies {
		log.Info("the API does not serve ClusterNetworkPolicy (policy.networking.k8s.io/v1beta1): only NetworkPolicy applies on the fast path")
	}
	if err := (&netpol.FastPathReconciler{Isolation: isolation, Datapath: dp, Store: store, Networks: nodeNets,
		Log: log.WithName("networkpolicy-fastpath")}).SetupWithManager(mgr); err != nil {
		return nil, nil, nil, err
	}
	if withCluster {
		if err := ensureDefaultVPN(ctx, direct, o); err != nil {
			return nil, nil, nil, err
		}
	}
	go func() {
		if err := mgr.Start(ctx); err != nil {
			log.Error(err, "manager stopped")
		}
	}()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		return nil, nil, nil, fmt.Errorf("informer caches did not sync")
	}
	// Warm the informers the node role reads so the first ADD does not start them.
	var warm v1alpha1.VPNBlockList
	if err := mgr.GetCache().List(ctx, &warm); err != nil {
		return nil, nil, nil, fmt.Errorf("start vpnblock informer: %w", err)
	}
	var warmIDs v1alpha1.VPNIDList
	if err := mgr.GetCache().List(ctx, &warmIDs); err != nil {
		return nil, nil, nil, fmt.Errorf("start vpnid informer: %w", err)
	}
	var vpns v1alpha1.VirtualPrivateNetworkList
	if err := mgr.GetCache().List(ctx, &vpns); err != nil {
		return nil, nil, nil, fmt.Errorf("list vpns: %w", err)
	}
	keep := map[string]bool{}
	for _, v := range vpns.Items {
		keep[v.Name] = true
	}
	if err := gw.Sweep(ctx, keep); err != nil {
		log.Error(err, "sweep management ports of deleted VPNs")
	}
	return nodeNets, isolation, rel, nil
}

// newManager builds the manager; leader election only where the cluster role runs (the
// node role may not take the lease: docs/deploy.md, "RBAC").
func newManager(o *options, leaderElection bool, log logr.Logger) (ctrl.Manager, *rest.Config, *runtime.Scheme, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", o.kubeconfig)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("kubeconfig: %w", err)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, nil, nil, err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, nil, nil, err
	}
	if err := cnpv1.Install(scheme); err != nil {
		return nil, nil, nil, err
	}
	ctrl.SetLogger(log.WithName("runtime"))
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        scheme,
		Logger:                        log.WithName("manager"),
		LeaderElection:                leaderElection,
		LeaderElectionID:              "sdncni-cluster-role",
		LeaderElectionNamespace:       o.leaderNamespace,
		LeaderElectionReleaseOnCancel: true,
		Metrics:                       metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:        "0",
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("new manager: %w", err)
	}
	return mgr, cfg, scheme, nil
}

// setupClusterRole registers the leader-elected reconcilers: VPNs (ids, OVN topology,
// status, finalizers), Services (OVN load balancers) and NetworkPolicies (OVN ACLs).
func setupClusterRole(mgr ctrl.Manager, o *options, nb *ovs.Northbound, log logr.Logger) error {
	cr := &vpn.ClusterReconciler{Client: mgr.GetClient(), API: mgr.GetAPIReader(), NB: nb, Recorder: mgr.GetEventRecorderFor("sdncni-controller"),
		DefaultMTU: o.mtu, Resync: 15 * time.Second, BlocksPerVPN: o.limits.BlocksPerVPN, Log: log.WithName("vpn")}
	if err := cr.SetupWithManager(mgr); err != nil {
		return err
	}
	sr := &vpn.ServiceReconciler{Client: mgr.GetClient(), NB: nb, Limits: o.limits, Recorder: mgr.GetEventRecorderFor("sdncni-controller"),
		Resync: time.Minute, Log: log.WithName("service")}
	if err := sr.SetupWithManager(mgr); err != nil {
		return err
	}
	ports, onPort := netpol.PortEvents()
	nb.OnPodPort(onPort)
	pr := &netpol.Reconciler{Client: mgr.GetClient(), NB: nb, Recorder: mgr.GetEventRecorderFor("sdncni-controller"),
		Resync: 10 * time.Second, Ports: ports, ClusterPolicies: netpol.ClusterPoliciesServed(mgr.GetRESTMapper()),
		Log: log.WithName("networkpolicy")}
	if !pr.ClusterPolicies {
		log.Info("the API does not serve ClusterNetworkPolicy (policy.networking.k8s.io/v1beta1, deploy/crds): not realised")
	}
	return pr.SetupWithManager(mgr)
}

// ensureDefaultVPN creates the default VPN from the flags if nobody has yet; the cluster
// role does it (--role=all or cluster). A second create is refused as AlreadyExists.
func ensureDefaultVPN(ctx context.Context, c client.Client, o *options) error {
	v := &v1alpha1.VirtualPrivateNetwork{
		ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.DefaultVPNName},
		Spec:       v1alpha1.VirtualPrivateNetworkSpec{CIDR: o.cidr.String(), NodeBlockSize: int32(o.blockSize)},
	}
	// Left out, each node uses the MTU its tunnel topology allows.
	if err := c.Create(ctx, v); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create default vpn: %w", err)
	}
	return nil
}
