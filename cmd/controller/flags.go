package main

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sdncni/sdncni/internal/version"
	"github.com/sdncni/sdncni/pkg/cniapi"
	"github.com/sdncni/sdncni/pkg/cniserver"
	"github.com/sdncni/sdncni/pkg/crossnode"
	"github.com/sdncni/sdncni/pkg/datapath"
	"github.com/sdncni/sdncni/pkg/ovs"
	"github.com/sdncni/sdncni/pkg/pki"
	"github.com/sdncni/sdncni/pkg/vpn"
)

type options struct {
	socket             string
	ovsDB              string
	nbDB               string
	nbTLS              ovs.TLS
	nodeCertDir        string // nodecert.go
	signNodeCerts      bool
	nodeServiceAccount string
	nodeCertValidity   time.Duration
	pkiNamespace       string
	bridge             string
	datapathType       string
	network            string
	networkID          uint
	cidr               netip.Prefix
	gateway            netip.Addr
	mtu                int
	networksFile       string
	ipamStore          string
	pinDir             string
	fastPath           bool
	metricsAddr        string
	sbDB               string // policydrops.go
	openflowSocket     string
	nodeName           string
	ovnWait            time.Duration
	reqTimeout         time.Duration
	verbosity          int
	teardown           bool
	kubeconfig         string
	role               string // roleAll, roleNode or roleCluster (roles.go)
	leaderNamespace    string
	blockSize          int
	dnsService         string
	serviceCIDRs       []netip.Prefix
	controlPlane       []netip.Prefix
	netnsDirs          []string
	// limits bound what one VPN may have realised (--max-*, docs/configuration.md).
	limits vpn.Limits
	// releaseAfter: a node gives back a block empty this long (0: never).
	releaseAfter time.Duration

	// Tunnel topology (topology.go). mtu 0 means auto.
	allocRange      netip.Prefix
	tunnelTxOffload string // auto, on or off
	// encapWait: how long to wait at start for OVN's tunnel endpoint (ovn-encap-ip),
	// which another container may set moments later; 0: take the row as it is.
	encapWait    time.Duration
	txOffloadOff bool // what tunnelTxOffload resolved to

	// Cross-node fast path (crossnode.go): off when crossNodeDev is empty.
	crossNodeDev   string
	crossNodeIP    netip.Addr
	crossNodePort  int
	crossNodePeers []datapath.RemoteBlock
}

func parseFlags(args []string) (*options, error) {
	host, _ := os.Hostname()
	o := &options{}
	fs := flag.NewFlagSet("sdncni-controller", flag.ContinueOnError)
	var cidr, gw, allocRange, serviceCIDRs, controlPlane, netnsDirs, crossNodeIP, crossNodePeers string
	var showVersion bool
	fs.StringVar(&o.socket, "socket", cniapi.DefaultSocket, "unix socket the CNI binary talks to")
	fs.StringVar(&o.ovsDB, "ovs-db", "unix:/var/run/openvswitch/db.sock", "local Open_vSwitch database endpoint")
	fs.StringVar(&o.nbDB, "nb-db", "unix:/var/run/ovn/ovnnb_db.sock", "OVN Northbound database endpoint (ssl:HOST:PORT needs the --ovn-tls-* files)")
	fs.StringVar(&o.nbTLS.Key, "ovn-tls-key", "", "private key (PEM) of this node's client certificate for ssl: OVN databases")
	fs.StringVar(&o.nbTLS.Cert, "ovn-tls-cert", "", "this node's client certificate (PEM) for ssl: OVN databases")
	fs.StringVar(&o.nbTLS.CA, "ovn-tls-ca", "", "CA certificates (PEM) that sign the OVN databases' server certificate")
	fs.StringVar(&o.nodeCertDir, "ovn-node-cert-dir", "", "--role=node: make this node's own OVN client key here and have its certificate (CN: --node-name) signed through a CertificateSigningRequest, renewed before it expires; sets --ovn-tls-key and --ovn-tls-cert")
	fs.BoolVar(&o.signNodeCerts, "sign-node-certs", false, "--role=cluster: approve and sign the nodes' OVN client certificate requests (signer "+pki.SignerName+") with the CA of --pki-namespace")
	fs.StringVar(&o.nodeServiceAccount, "node-service-account", "sdncni-system/sdncni-node", "namespace/name of the node role's ServiceAccount: the only requester whose node certificates are signed")
	fs.DurationVar(&o.nodeCertValidity, "node-cert-validity", 30*24*time.Hour, "life of a node's OVN client certificate (nodes renew at two thirds)")
	fs.StringVar(&o.pkiNamespace, "pki-namespace", "sdncni-system", "namespace of the OVN CA Secret")
	fs.StringVar(&o.bridge, "bridge", "br-int", "OVS integration bridge")
	fs.StringVar(&o.datapathType, "datapath-type", "netdev", "OVS datapath type of the bridge: netdev (userspace) or system (kernel module)")
	fs.StringVar(&o.network, "network", "default", "name of the pod network")
	fs.UintVar(&o.networkID, "network-id", 1, "numeric id of the pod network (fast-path VPN key, ≥ 1)")
	fs.StringVar(&cidr, "cidr", "10.244.0.0/16", "pod network CIDR")
	fs.StringVar(&gw, "gateway", "", "gateway address (default: the CIDR's first address)")
	fs.IntVar(&o.mtu, "mtu", 0, "pod interface MTU (0: auto, the MTU of the link holding the OVN encap IP minus the Geneve overhead, or 1400 without a tunnel)")
	fs.StringVar(&allocRange, "alloc-range", "", "part of --cidr this node allocates pod addresses from (default: all of it)")
	fs.DurationVar(&o.encapWait, "encap-ip-wait", 0, "at start, wait this long for external_ids:ovn-encap-ip in the local Open_vSwitch row before deciding the pod MTU and tx offload from the tunnel topology (set where ovn-controller's container writes it alongside this one; 0: don't wait)")
	fs.StringVar(&o.tunnelTxOffload, "tunnel-tx-offload", txOffloadAuto, "tx offload of the taps through which pod traffic enters OVS (pods' OVS ports, management ports; pods keep theirs): auto (off when the netdev datapath tunnels to other nodes), on or off")
	fs.StringVar(&o.networksFile, "networks-file", "", "JSON file of further isolated networks and their namespaces (see docs/configuration.md)")
	fs.StringVar(&o.ipamStore, "ipam-store", "/var/lib/sdncni/ipam.json", "address store file")
	fs.StringVar(&o.pinDir, "bpf-pin-dir", "/sys/fs/bpf/sdncni/"+host, "bpffs directory for the fast path's pins")
	fs.BoolVar(&o.fastPath, "fast-path", true, "carry same-node pod-to-pod traffic on the eBPF fast path")
	fs.StringVar(&o.metricsAddr, "metrics-addr", "127.0.0.1:9465", "Prometheus metrics listen address (empty: off)")
	fs.StringVar(&o.sbDB, "sb-db", "", "--role=node: OVN Southbound endpoint(s), read for the policy drop counters (empty: the ovn-remote of the local Open_vSwitch row; ssl: uses the --ovn-tls-* files)")
	fs.StringVar(&o.openflowSocket, "openflow-socket", "", "--role=node: the integration bridge's OpenFlow management socket, read for the policy drop counters (empty: <bridge>.mgmt next to a unix: --ovs-db)")
	fs.StringVar(&o.nodeName, "node-name", host, "this node's name (ownership of OVN ports)")
	fs.DurationVar(&o.ovnWait, "ovn-wait", 10*time.Second, "how long ADD waits for ovn-controller to install a port")
	fs.DurationVar(&o.reqTimeout, "request-timeout", 60*time.Second, "bound on one CNI request")
	fs.IntVar(&o.verbosity, "v", 0, "log verbosity (0: requests that fail and lifecycle; 1: every request)")
	fs.BoolVar(&showVersion, "version", false, "print the version and exit")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig of the API server: VPNs come from VirtualPrivateNetwork objects (without it: the flags' network and --networks-file)")
	fs.StringVar(&o.role, "role", roleAll, "what this process runs (--kubeconfig mode): all (node and leader-elected cluster role, one identity), node (CNI, datapath, the node's blocks; no leader election) or cluster (the leader-elected VPN and Service reconcilers and the default VPN, with OVN NB only)")
	fs.StringVar(&o.leaderNamespace, "leader-election-namespace", "sdncni-system", "namespace of the cluster role's leader-election lease")
	fs.IntVar(&o.blockSize, "node-block-size", 26, "prefix length of the per-node address blocks of the default VPN")
	fs.DurationVar(&o.releaseAfter, "release-empty-blocks-after", 5*time.Minute, "give back a node's address block of a VPN once no pod has used it this long (one block of each VPN the node has pods of, or must reach, stays; 0: keep every block; --kubeconfig mode)")
	fs.StringVar(&o.dnsService, "dns-service", "kube-system/kube-dns", "namespace/name of the cluster DNS Service, which pods of every VPN reach (empty: none; --kubeconfig mode)")
	fs.StringVar(&serviceCIDRs, "service-cidr", "10.96.0.0/12", "the cluster's ClusterIP range(s), comma-separated: pods' packets to them that no shared Service takes are dropped at the node (empty: none; --kubeconfig mode)")
	fs.StringVar(&controlPlane, "control-plane-cidrs", "", "addresses of the API servers, comma-separated CIDRs: connections from them, arriving from the node network, may reach this node's pods (pods/proxy, webhooks); empty: none (--kubeconfig mode)")
	fs.StringVar(&netnsDirs, "netns-dirs", strings.Join(cniserver.DefaultNetnsPrefixes, ","), "directories, comma-separated, where the runtime puts pods' network namespaces: ADD and CHECK refuse a CNI_NETNS elsewhere (except /proc/<pid>/ns/net, pid ≠ 1) and the node's own namespace always")
	fs.IntVar(&o.limits.ServicesPerVPN, "max-services-per-vpn", vpn.DefaultServicesPerVPN, "Services of one VPN the cluster role realises as OVN load balancers, oldest first; the newer ones get none, and the VPN's ServiceLimitReached condition names them (0: no bound)")
	fs.IntVar(&o.limits.BackendsPerService, "max-backends-per-service", vpn.DefaultBackendsPerService, "backends (VIP × endpoint) of one Service in its OVN load balancers; over it each port keeps its first endpoints, an equal share (0: no bound)")
	fs.IntVar(&o.limits.BlocksPerVPN, "max-blocks-per-vpn", vpn.DefaultBlocksPerVPN, "address blocks one VPN may hold over all nodes: a node refuses to claim one more (the pod's ADD fails with CNI code 11); give both roles the same value (0: no bound)")
	fs.StringVar(&o.crossNodeDev, "cross-node-vxlan", "", "name of the collect-metadata VXLAN device of the cross-node fast path (created if missing): same-VPN IPv4 to pods of other nodes that answer its probes bypasses OVS; empty: off, all cross-node traffic takes OVN's Geneve (docs/datapath.md). With --kubeconfig the other nodes' blocks come from their VPNBlocks, their addresses from their Node objects")
	fs.StringVar(&crossNodeIP, "cross-node-underlay-ip", "", "this node's IPv4 on a kernel-owned underlay link (not an OVS bridge's port): the cross-node path's VXLAN leaves from it (needed with --cross-node-vxlan); with --kubeconfig the other nodes must find it on this node's Node object (annotation sdncni.io/underlay-ip, else its first InternalIP)")
	fs.IntVar(&o.crossNodePort, "cross-node-port", crossnode.DefaultPort, "UDP port of every node's cross-node VXLAN device")
	fs.StringVar(&crossNodePeers, "cross-node-peers", "", "other nodes' blocks, comma-separated VPNID:CIDR=UNDERLAYIP (e.g. 1:10.78.0.128/25=100.65.0.2); each is used only while its node answers the probes")
	fs.BoolVar(&o.teardown, "teardown", false, "remove the fast path (programs, links, maps, pins under --bpf-pin-dir) and exit; for uninstalling a node after its pods are gone")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if showVersion {
		fmt.Println("sdncni-controller", version.Version)
		os.Exit(0)
	}
	switch o.role {
	case roleAll:
	case roleNode, roleCluster:
		if o.kubeconfig == "" {
			return nil, fmt.Errorf("--role=%s needs --kubeconfig (without it there is no cluster role to split off)", o.role)
		}
	default:
		return nil, fmt.Errorf("--role %q: want all, node or cluster", o.role)
	}
	if o.nodeCertDir != "" && o.role != roleNode {
		return nil, fmt.Errorf("--ovn-node-cert-dir is for --role=node")
	}
	if o.nodeCertDir != "" && o.nbTLS.CA == "" {
		return nil, fmt.Errorf("--ovn-node-cert-dir needs --ovn-tls-ca")
	}
	if o.signNodeCerts && o.role != roleCluster {
		return nil, fmt.Errorf("--sign-node-certs is for --role=cluster")
	}
	if o.dnsService != "" {
		if ns, name, ok := strings.Cut(o.dnsService, "/"); !ok || ns == "" || name == "" || strings.Contains(name, "/") {
			return nil, fmt.Errorf("--dns-service %q: want namespace/name", o.dnsService)
		}
	}
	var err error
	if o.serviceCIDRs, err = parseCIDRs("--service-cidr", serviceCIDRs); err != nil {
		return nil, err
	}
	if o.controlPlane, err = parseCIDRs("--control-plane-cidrs", controlPlane); err != nil {
		return nil, err
	}
	for _, d := range strings.Split(netnsDirs, ",") {
		if d = strings.TrimSpace(d); d == "" {
			continue
		}
		if !filepath.IsAbs(d) || d == "/" {
			return nil, fmt.Errorf("--netns-dirs %q: want absolute directories other than /, comma-separated", netnsDirs)
		}
		o.netnsDirs = append(o.netnsDirs, d)
	}
	if o.limits.ServicesPerVPN < 0 || o.limits.BackendsPerService < 0 || o.limits.BlocksPerVPN < 0 {
		return nil, fmt.Errorf("--max-services-per-vpn, --max-backends-per-service, --max-blocks-per-vpn: want 0 (no bound) or more")
	}
	if len(o.netnsDirs) == 0 {
		return nil, fmt.Errorf("--netns-dirs is empty: no pod could be added")
	}
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return nil, fmt.Errorf("--cidr: %w", err)
	}
	if p != p.Masked() {
		return nil, fmt.Errorf("--cidr %s is not a network address (did you mean %s?)", p, p.Masked())
	}
	o.cidr = p
	if gw == "" {
		o.gateway = p.Addr().Next()
	} else if o.gateway, err = netip.ParseAddr(gw); err != nil {
		return nil, fmt.Errorf("--gateway: %w", err)
	}
	if allocRange != "" {
		if o.allocRange, err = netip.ParsePrefix(allocRange); err != nil {
			return nil, fmt.Errorf("--alloc-range: %w", err)
		}
		if o.allocRange != o.allocRange.Masked() || o.allocRange.Bits() < p.Bits() || !p.Contains(o.allocRange.Addr()) {
			return nil, fmt.Errorf("--alloc-range %s is not a sub-prefix of --cidr %s", o.allocRange, p)
		}
	}
	if o.mtu != 0 && (o.mtu < 576 || o.mtu > 65535) {
		return nil, fmt.Errorf("--mtu %d out of range 576-65535 (or 0 for auto)", o.mtu)
	}
	switch o.tunnelTxOffload {
	case txOffloadAuto, txOffloadOn, txOffloadOff:
	default:
		return nil, fmt.Errorf("--tunnel-tx-offload %q: want auto, on or off", o.tunnelTxOffload)
	}
	if o.networkID == 0 || o.networkID > 1<<32-1 {
		return nil, fmt.Errorf("--network-id must be in 1..%d", uint32(1<<32-1))
	}
	if o.nodeName == "" {
		return nil, fmt.Errorf("--node-name is required (no hostname)")
	}
	if err := parseCrossNode(o, crossNodeIP, crossNodePeers); err != nil {
		return nil, err
	}
	return o, nil
}

// parseCrossNode checks the --cross-node-* flags.
func parseCrossNode(o *options, ip, peers string) error {
	if o.crossNodeDev == "" {
		if ip != "" || peers != "" {
			return fmt.Errorf("--cross-node-underlay-ip and --cross-node-peers need --cross-node-vxlan")
		}
		return nil
	}
	if o.teardown {
		return nil // only the device's name matters: it is deleted
	}
	var err error
	if o.crossNodeIP, err = netip.ParseAddr(ip); err != nil || !o.crossNodeIP.Is4() || o.crossNodeIP.IsLoopback() {
		return fmt.Errorf("--cross-node-vxlan needs --cross-node-underlay-ip, a non-loopback IPv4 (got %q)", ip)
	}
	if o.crossNodePort < 1 || o.crossNodePort > 65535 {
		return fmt.Errorf("--cross-node-port %d out of range", o.crossNodePort)
	}
	if o.role == roleCluster {
		return fmt.Errorf("--cross-node-vxlan is a node's flag: --role=cluster runs no datapath")
	}
	if o.kubeconfig != "" && peers != "" {
		// With VPNs the candidates come from the other nodes' VPNBlocks and Nodes
		// (vpn.CrossNodeReconciler); a static list beside them would be a second truth.
		return fmt.Errorf("--cross-node-peers is for static networks: with --kubeconfig the blocks come from the VPNBlocks")
	}
	for _, e := range strings.Split(peers, ",") {
		if e = strings.TrimSpace(e); e == "" {
			continue
		}
		b, err := parsePeer(e)
		if err != nil {
			return fmt.Errorf("--cross-node-peers %q: %w", e, err)
		}
		o.crossNodePeers = append(o.crossNodePeers, b)
	}
	return nil
}

// parsePeer parses VPNID:CIDR=UNDERLAYIP.
func parsePeer(e string) (datapath.RemoteBlock, error) {
	id, rest, ok1 := strings.Cut(e, ":")
	block, node, ok2 := strings.Cut(rest, "=")
	if !ok1 || !ok2 {
		return datapath.RemoteBlock{}, fmt.Errorf("want VPNID:CIDR=UNDERLAYIP")
	}
	vpnID, err := strconv.ParseUint(id, 10, 32)
	if err != nil || vpnID == 0 || vpnID > datapath.MaxVNI {
		return datapath.RemoteBlock{}, fmt.Errorf("vpn id %q: want 1..%d", id, datapath.MaxVNI)
	}
	p, err := netip.ParsePrefix(block)
	if err != nil || !p.Addr().Is4() || p != p.Masked() {
		return datapath.RemoteBlock{}, fmt.Errorf("block %q: want a masked IPv4 CIDR", block)
	}
	a, err := netip.ParseAddr(node)
	if err != nil || !a.Is4() {
		return datapath.RemoteBlock{}, fmt.Errorf("underlay ip %q: want IPv4", node)
	}
	return datapath.RemoteBlock{VPN: uint32(vpnID), Block: p, Node: a}, nil
}

// parseCIDRs parses a comma-separated list of IPv4 CIDRs (empty: none).
func parseCIDRs(flag, list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, c := range strings.Split(list, ",") {
		if c = strings.TrimSpace(c); c == "" {
			continue
		}
		p, err := netip.ParsePrefix(c)
		if err != nil || !p.Addr().Is4() {
			return nil, fmt.Errorf("%s %q: want IPv4 CIDRs, comma-separated", flag, list)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
