#!/usr/bin/env bash
# k8s-install.sh — install sdncni on the cluster of hack/k8s-cluster.sh the way a user
# installs it anywhere: `kubectl apply -k` of a kustomization whose base is deploy/, plus
# the CoreDNS addon. The kustomization (written to DIR/install/) is what a user would
# write for their own cluster: the image pinned by digest, and sdncni-config's site
# settings (here: the userspace datapath, the API server's and OVN central's host
# addresses, OVN central on the first node).
#
#   hack/k8s-install.sh apply   [--dir DIR]   install, then wait until every node is Ready
#                                             (containerd's CNI STATUS succeeds) and the
#                                             DaemonSet, the sdncni-cluster Deployment,
#                                             OVN central and CoreDNS are ready
#   hack/k8s-install.sh delete  [--dir DIR]   CoreDNS, the VPNs (refused while workloads'
#                                             pods are attached), kubectl delete -k, then
#                                             each node's teardown (bin/sdncni-controller
#                                             --teardown in the node, CNI files removed)
#
# Options/environment as for hack/k8s-cluster.sh (SDNK_DIR, SDNK_PREFIX). The images must
# have been imported into the nodes (hack/k8s-cluster.sh up does, from _output/images;
# build them with `make images`).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CLUSTER=$REPO/hack/k8s-cluster.sh
IMAGES=${SDNK_IMAGE_DIR:-$REPO/_output/images}
WAIT=${SDNK_INSTALL_WAIT:-300s}

log() { echo "k8s-install: $*" >&2; }
die() { log "error: $*"; exit 1; }

args=()
cmd=${1:-}
shift || true
while (($#)); do
	case $1 in
	--dir) export SDNK_DIR=$2; shift 2 ;;
	--prefix) export SDNK_PREFIX=$2; shift 2 ;;
	*) die "unknown option $1" ;;
	esac
done

KUBECONFIG=$("$CLUSTER" kubeconfig "${args[@]}")
export KUBECONFIG
BIN=$("$REPO/hack/k8s-binaries.sh" cluster | tail -n1)
kc() { "$BIN/kubectl" "$@"; }
DIR=$(dirname "$KUBECONFIG")
PREFIX=${SDNK_PREFIX:-sdnk}

# digest ARCHIVE: the manifest digest containerd recorded when it imported ARCHIVE (an
# OCI layout; its index names each image's manifest).
digest() {
	tar -xOf "$1" index.json | jq -r '.manifests[0].digest'
}

# image_name ARCHIVE: the repository of ARCHIVE's first image.
image_name() {
	local ref
	ref=$(tar -xOf "$1" index.json | jq -r '.manifests[0].annotations["io.containerd.image.name"]')
	echo "${ref%:*}"
}

# pin_by_digest ARCHIVE: import ARCHIVE into every node and make REPO@DIGEST resolvable. A registry answers
# digest references itself; an image imported from an archive is known only by its tags,
# so the kubelet (IfNotPresent) would try to pull REPO@DIGEST.
pin_by_digest() {
	local repo dgst tag n
	repo=$(image_name "$1")
	dgst=$(digest "$1")
	tag=$(tar -xOf "$1" index.json | jq -r '.manifests[0].annotations["io.containerd.image.name"]')
	for n in $(kc get nodes -o jsonpath='{.items[*].metadata.name}'); do
		# Import again: the archive may be newer than what 'up' imported (content that is
		# there already is not copied twice).
		"$CLUSTER" exec "$n" -- "$BIN/ctr" -n k8s.io images import --local "$1" >/dev/null 2>&1 ||
			die "import $1 into $n"
		"$CLUSTER" exec "$n" -- "$BIN/ctr" -n k8s.io images tag --force "$tag" "$repo@$dgst" >/dev/null 2>&1 ||
			die "tag $repo@$dgst on $n"
	done
}

first_node() { kc get nodes -o jsonpath='{.items[0].metadata.name}'; }
node_ip() { kc get node "$1" -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}'; }

write_kustomization() {
	local out=$DIR/install sdncni coredns central central_ip api base
	[[ -f $IMAGES/sdncni.tar && -f $IMAGES/coredns.tar ]] || die "no images in $IMAGES: run 'make images'"
	sdncni=$(digest "$IMAGES/sdncni.tar")
	coredns=$(digest "$IMAGES/coredns.tar")
	pin_by_digest "$IMAGES/sdncni.tar"
	pin_by_digest "$IMAGES/coredns.tar"
	central=$(first_node)
	central_ip=$(node_ip "$central")
	mkdir -p "$out"
	base=$(realpath --relative-to="$out" "$REPO/deploy") # kustomize takes no absolute paths
	# The API server as nodes reach it (the admin kubeconfig goes through a relay on the
	# root netns's loopback, which nodes cannot use).
	api=$(kc get endpointslices -n default -l kubernetes.io/service-name=kubernetes \
		-o jsonpath='{.items[0].endpoints[0].addresses[0]}')
	cat >"$out/kustomization.yaml" <<EOF
# Written by hack/k8s-install.sh: sdncni on the cluster of hack/k8s-cluster.sh.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- $base
- $base/addons/coredns
# deploy/ names its images sdncni.local/sdncni:dev and sdncni.local/coredns:…; pin both.
images:
- name: sdncni.local/sdncni
  digest: $sdncni
- name: sdncni.local/coredns
  digest: $coredns
patches:
# No OVS kernel module here: the userspace datapath, tunnelling through each node's
# eth1 (its /etc/sdncni/node.env); the cross-node fast path's VXLAN over eth0, the
# kernel-owned link of the node IP. No Service proxy on the hosts: real addresses.
- target: {kind: ConfigMap, name: sdncni-config}
  patch: |
    - {op: replace, path: /data/datapath-type, value: netdev}
    - {op: add, path: /data/api-server-host, value: "$api"}
    - {op: add, path: /data/api-server-port, value: "6443"}
    - {op: add, path: /data/ovn-nb, value: "ssl:$central_ip:6641"}
    - {op: add, path: /data/ovn-sb, value: "ssl:$central_ip:6642"}
    - {op: add, path: /data/control-plane-cidrs, value: "$api/32"}
    - {op: add, path: /data/cross-node-vxlan, value: sdncni-vx}
# The nodes have no upstream resolver (nothing outside this machine is reachable): cluster
# names only, without CoreDNS's forward plugin, which refuses to start without upstreams.
- target: {kind: ConfigMap, name: coredns}
  patch: |
    - op: replace
      path: /data/Corefile
      value: |
        .:53 {
            errors
            health {
                lameduck 5s
            }
            ready
            kubernetes cluster.local in-addr.arpa ip6.arpa {
                pods insecure
                fallthrough in-addr.arpa ip6.arpa
                ttl 30
            }
            prometheus :9153
            cache 30
            loop
            reload
            loadbalance
        }
# Two worker nodes and no control-plane node: one OVN central member, on the first node.
- target: {kind: StatefulSet, name: ovn-central}
  patch: |
    - {op: replace, path: /spec/replicas, value: 1}
    - {op: replace, path: /spec/template/spec/nodeSelector, value: {kubernetes.io/hostname: $central}}
EOF
	echo "$out"
}

wait_ready() {
	log "waiting for OVN central, the sdncni-cluster Deployment, the sdncni-node DaemonSet and every node to be Ready"
	kc -n sdncni-system rollout status statefulset/ovn-central --timeout="$WAIT"
	kc -n sdncni-system rollout status deployment/sdncni-cluster --timeout="$WAIT"
	kc -n sdncni-system rollout status daemonset/sdncni-node --timeout="$WAIT"
	kc wait --for=condition=Ready node --all --timeout="$WAIT"
	kc -n kube-system rollout status deployment/coredns --timeout="$WAIT"
}

# pod_routes_loop: the control plane here is not a node of the pod network (no kubelet,
# no sdncni), so, as a cloud route table or BGP would, give its netns a route per
# VPNBlock of the default VPN via the node that holds it, and keep them in step (blocks
# are claimed as pods come). Runs until the control plane's netns is gone or 'delete'.
pod_routes_loop() {
	local cp=/run/netns/${PREFIX}-cp json want have r
	while [[ -e $cp ]]; do
		if json=$(kc get vpnblocks -o json 2>/dev/null) && nodes=$(kc get nodes -o json 2>/dev/null); then
			want=$(jq -r --argjson nodes "$nodes" '
				($nodes.items | map({(.metadata.name): ((.status.addresses // [])[] | select(.type=="InternalIP") | .address)}) | add) as $ip
				| .items[] | select(.spec.vpn == "default" and $ip[.spec.node] != null)
				| "\(.spec.cidr) via \($ip[.spec.node])"' <<<"$json" | sort)
			have=$(nsenter --net="$cp" ip -4 route show proto 188 | awk '{print $1, $2, $3}' | sort)
			while read -r r; do
				[[ -n $r ]] && nsenter --net="$cp" ip route replace $r proto 188 2>/dev/null
			done < <(comm -13 <(echo "$have") <(echo "$want"))
			while read -r r; do
				[[ -n $r ]] && nsenter --net="$cp" ip route del $r proto 188 2>/dev/null
			done < <(comm -23 <(echo "$have") <(echo "$want"))
		fi
		sleep 2
	done
}

start_pod_routes() {
	local pidfile=$DIR/install/pod-routes.pid pid
	pid=$(cat "$pidfile" 2>/dev/null || true)
	if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then return 0; fi
	pod_routes_loop </dev/null >"$DIR/install/pod-routes.log" 2>&1 &
	echo $! >"$pidfile"
}

stop_pod_routes() {
	local pidfile=$DIR/install/pod-routes.pid pid
	pid=$(cat "$pidfile" 2>/dev/null || true)
	[[ -n $pid ]] && kill "$pid" 2>/dev/null
	rm -f "$pidfile"
}

apply() {
	local k t=$SECONDS
	k=$(write_kustomization)
	# A Job's pod template is immutable: an upgrade (a new image digest) cannot apply over
	# the finished sdncni-pki Job, so it goes first; it is idempotent (docs/deploy.md).
	kc -n sdncni-system delete job sdncni-pki --ignore-not-found >&2
	log "kubectl apply -k $k"
	kc apply -k "$k" >&2
	start_pod_routes
	wait_ready
	log "installed in $((SECONDS - t)) s"
	kc get nodes -o wide >&2
}

delete() {
	local k=$DIR/install n attached
	stop_pod_routes
	if [[ -f $k/kustomization.yaml ]]; then
		# Order matters: a VPN keeps its finalizer while pods are attached, and only the
		# cluster role (the sdncni-cluster Deployment) removes it. So: our own pods
		# (CoreDNS) first, then the VPNs while it still runs, then everything else.
		kc -n kube-system delete deployment coredns --ignore-not-found --wait=true --timeout=120s >&2 || true
		kc -n kube-system wait --for=delete pod -l k8s-app=kube-dns --timeout=120s >/dev/null 2>&1 || true
		if kc get crd virtualprivatenetworks.sdncni.io >/dev/null 2>&1; then
			# status.pods follows pod deletions within seconds; wait for it before judging.
			local i
			for ((i = 0; i < 30; i++)); do
				attached=$(kc get virtualprivatenetworks -o jsonpath='{range .items[?(@.status.pods>0)]}{.metadata.name}={.status.pods} {end}')
				[[ -z $attached ]] && break
				sleep 2
			done
			[[ -z $attached ]] || die "pods are still attached to VPNs (${attached% }): delete those workloads first"
			kc delete virtualprivatenetworks --all --wait=true --timeout=120s >&2
		fi
		kc delete -k "$k" --ignore-not-found --wait=true --timeout=180s >&2
	fi
	# What a node keeps after its agent pod is gone: the fast path's programs, maps and
	# pins (the controller's own --teardown), the CNI config and binaries.
	for n in $(kc get nodes -o jsonpath='{.items[*].metadata.name}'); do
		"$CLUSTER" exec "$n" -- "$REPO/bin/sdncni-controller" --teardown --bpf-pin-dir=/sys/fs/bpf/sdncni \
			--cross-node-vxlan=sdncni-vx >&2 ||
			die "teardown on $n"
		"$CLUSTER" exec "$n" -- rm -f /etc/cni/net.d/10-sdncni.conflist /opt/cni/bin/sdncni \
			/opt/cni/bin/portmap /opt/cni/bin/bandwidth
		# The userspace datapath's taps outlive ovs-vswitchd (it re-adopts them on a
		# restart); without OVS they are only clutter.
		"$CLUSTER" exec "$n" -- bash -c 'for l in br-int br-phy ovs-netdev; do ip link del "$l" 2>/dev/null || true; done'
		"$CLUSTER" exec "$n" -- bash -c "rm -rf /var/lib/sdncni/*" # conf.db, address store, OVN central
	done
	rm -rf "$DIR/install"
	log "deleted"
}

case $cmd in
apply) apply ;;
delete) delete ;;
*) echo "usage: $0 apply|delete [--dir DIR] [--prefix P]" >&2; exit 2 ;;
esac
