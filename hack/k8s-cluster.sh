#!/usr/bin/env bash
# k8s-cluster.sh — a real multi-node Kubernetes cluster on this machine, without Docker:
# like kind, but each "node" is a set of Linux namespaces instead of a container.
#
#   hack/k8s-cluster.sh up          [options]  start (idempotent); waits for every node to
#                                              register; prints the admin kubeconfig path
#   hack/k8s-cluster.sh status      [options]  live/dead per daemon; non-zero if any is dead
#   hack/k8s-cluster.sh kubeconfig  [options]  print the admin kubeconfig path
#   hack/k8s-cluster.sh exec NODE [--] CMD...  run CMD in the node's namespaces (SDNK_DIR)
#   hack/k8s-cluster.sh down        [options]  stop everything and remove the state; succeeds
#                                              when things are already gone (also after a
#                                              killed 'up')
#
# Options (or environment):
#   --dir DIR      (SDNK_DIR, default /var/lib/sdncni-k8s) state: certs, etcd data, node
#                  file systems, pidfiles and the log of every daemon (*.log)
#   --nodes N      (SDNK_NODES, default 2) worker nodes
#   --port PORT    (SDNK_PORT, default 6443) the API server relay on the root netns's 127.0.0.1
#   --prefix P     (SDNK_PREFIX, default sdnk) names: netns P-cp, nodes (and their netns,
#                  hostnames, cgroups) P-node1..N. Two clusters at once need two prefixes.
#   K8S_VERSION    (v1.37.2) binaries come from hack/k8s-binaries.sh cluster (cached)
#   SDNK_IMAGES    image tarballs to import into every node (default: _output/images/*.tar)
#
# How a user reaches the cluster: the API server listens on 100.65.0.254:6443 inside the
# control-plane netns only. A relay (socat, root netns) listens on 127.0.0.1:PORT and
# carries each connection into that netns; `kubeconfig` prints an admin (system:masters)
# kubeconfig that uses it:
#
#   export KUBECONFIG=$(hack/k8s-cluster.sh kubeconfig); kubectl get nodes -o wide
#
# Layout:
#   netns P-cp     etcd (127.0.0.1), kube-apiserver, kube-controller-manager, kube-scheduler;
#                  Linux bridges br-ul (100.65.0.254/24, the node network) and br-tun (no
#                  address; the tunnel underlay 100.66.0.0/24, for OVS)
#   node P-nodeN   its own netns (eth0: veth to br-ul, 100.65.0.N/24, default route via
#                  .254; eth1: veth to br-tun, no address, SDNCNI_TUNNEL_IF/_IP in its
#                  /etc/sdncni/node.env), its own UTS namespace (hostname = node name) and
#                  its own mount namespace, pinned under DIR/ns, where node-private
#                  directories (DIR/nodes/NODE/fs/...) are bind-mounted over /etc/cni/net.d,
#                  /opt/cni/bin, /run/containerd, /var/lib/kubelet, /run/openvswitch,
#                  /var/lib/sdncni, /etc/sdncni, /run/netns, … (NODE_PATHS) and a fresh bpffs
#                  is on /sys/fs/bpf. containerd and kubelet run there, so pods' hostPath
#                  volumes see the node's own paths. Node daemons and pods live under the
#                  cgroup /P-nodeN (kubelet's cgroupRoot) in every v1 hierarchy.
#
# Every daemon runs by PID (pidfiles under DIR); nothing is started through an init system.
# kubelet changes a few global sysctls (vm.overcommit_memory, kernel.panic, …): 'up'
# records them first and 'down' restores them.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
UL_NET=100.65.0       # the node network on br-ul
CP_IP=$UL_NET.254
TUN_NET=100.66.0      # the tunnel underlay on br-tun (addresses are OVS's to configure)
API_PORT=6443         # kube-apiserver's port inside the control-plane netns
SERVICE_CIDR=10.96.0.0/12
SERVICE_IP=10.96.0.1
CLUSTER_DNS=10.96.0.10
SANDBOX_IMAGE=sdncni.local/pause:3.10
NODE_PATHS=(/etc/cni/net.d /opt/cni/bin /var/lib/cni /run/containerd /var/lib/containerd
	/var/lib/kubelet /var/log/pods /var/log/containers /run/openvswitch /run/ovn /run/sdncni
	/var/lib/sdncni /var/lib/ovn /etc/sdncni /etc/kubernetes /run/netns)
# kubelet sets these (not namespaced): recorded by 'up', restored by 'down'.
SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
	kernel.keys.root_maxkeys kernel.keys.root_maxbytes)
WAIT_SECS=${SDNK_WAIT_SECS:-120}

log() { echo "k8s-cluster: $*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------------------- processes

# read_pid, proc_is, pid_alive, stop_pid, wait_for: shared with the other hack/ scripts.
# shellcheck source=lib/proc.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/proc.sh"

# start_daemon NAME PIDFILE LOG COMMAND...: start COMMAND (which must exec NAME) in a
# session of its own, stdio to LOG, unless PIDFILE names a live NAME. setsid does not fork
# here (a background job of a non-interactive shell is no group leader) and nsenter
# without --fork execs, so $! is the daemon itself.
start_daemon() {
	local name=$1 pidfile=$2 logf=$3
	shift 3
	if pid_alive "$pidfile" "$name"; then
		return 0
	fi
	echo "--- $(date -u +%FT%TZ) $*" >>"$logf"
	setsid "$@" </dev/null >>"$logf" 2>&1 &
	echo $! >"$pidfile"
	wait_for "$name to start (log: $logf)" pid_alive "$pidfile" "$name"
}

in_cp() { nsenter --net="/run/netns/$CP" -- "$@"; }

# in_node NODE COMMAND...: run COMMAND in all of the node's namespaces (net, mount, UTS).
in_node() {
	local n=$1
	shift
	nsenter --net="/run/netns/$n" --mount="$DIR/ns/$n.mnt" --uts="$DIR/ns/$n.uts" -- "$@"
}

# ---------------------------------------------------------------------------- config

# load_config: names and sizes from the options, or from DIR/config for a cluster that
# is up (so 'down' and 'status' need no options).
load_config() {
	if [[ -f $DIR/config ]] && ((${OPT_GIVEN:-0} == 0)); then
		# shellcheck disable=SC1091
		source "$DIR/config"
	fi
	CP=$PREFIX-cp
	NODE_NAMES=()
	local i
	for ((i = 1; i <= NODES; i++)); do NODE_NAMES+=("$PREFIX-node$i"); done
	KUBECONFIG_PATH=$DIR/admin.kubeconfig
}

save_config() {
	mkdir -p "$DIR"
	printf 'PREFIX=%q\nNODES=%q\nPORT=%q\nK8S_VERSION=%q\n' "$PREFIX" "$NODES" "$PORT" "$K8S_VERSION" >"$DIR/config"
}

# ---------------------------------------------------------------------------- certs

# sign NAME SUBJECT EXT: a P-256 key and a certificate signed by the cluster CA.
sign() {
	local name=$1 subj=$2 ext=$3 p=$DIR/pki
	[[ -f $p/$name.crt ]] && return 0
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$p/$name.key" -out "$p/$name.csr" -subj "$subj" 2>/dev/null
	printf '%s\n' "$ext" >"$p/$name.ext"
	openssl x509 -req -in "$p/$name.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial \
		-days 3650 -extfile "$p/$name.ext" -out "$p/$name.crt.tmp" 2>/dev/null
	mv "$p/$name.crt.tmp" "$p/$name.crt"
	rm -f "$p/$name.csr" "$p/$name.ext"
}

client_ext() { printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth'; }

certs() {
	local p=$DIR/pki n
	mkdir -p "$p"
	chmod 700 "$p"
	if [[ ! -f $p/ca.crt ]]; then
		openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
			-keyout "$p/ca.key" -out "$p/ca.crt.tmp" -days 3650 -subj "/CN=$PREFIX-ca" \
			-addext "basicConstraints=critical,CA:TRUE" \
			-addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
		mv "$p/ca.crt.tmp" "$p/ca.crt"
	fi
	[[ -f $p/sa.key ]] || openssl genrsa -out "$p/sa.key" 2048 2>/dev/null
	[[ -f $p/sa.pub ]] || openssl rsa -in "$p/sa.key" -pubout -out "$p/sa.pub" 2>/dev/null
	sign apiserver "/CN=kube-apiserver" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:$CP_IP,IP:127.0.0.1,IP:$SERVICE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
	sign apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$(client_ext)"
	sign admin "/O=system:masters/CN=$PREFIX-admin" "$(client_ext)"
	sign controller-manager "/CN=system:kube-controller-manager" "$(client_ext)"
	sign scheduler "/CN=system:kube-scheduler" "$(client_ext)"
	for n in "${NODE_NAMES[@]}"; do
		sign "kubelet-$n" "/O=system:nodes/CN=system:node:$n" "$(client_ext)"
	done
}

# kubeconfig SERVER CERTNAME USER: a kubeconfig with the CA and the client cert embedded.
kubeconfig() {
	local server=$1 cert=$2 user=$3 p=$DIR/pki
	cat <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $PREFIX
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 "$p/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 "$p/$cert.crt")
    client-key-data: $(base64 -w0 "$p/$cert.key")
contexts:
- name: $PREFIX
  context: {cluster: $PREFIX, user: $user}
current-context: $PREFIX
EOF
}

# ---------------------------------------------------------------------------- control plane

cp_net_up() {
	[[ -e /run/netns/$CP ]] || ip netns add "$CP"
	in_cp ip link set lo up
	local br
	for br in br-ul br-tun; do
		in_cp ip link show "$br" >/dev/null 2>&1 || in_cp ip link add "$br" type bridge
		in_cp ip link set "$br" up
	done
	in_cp ip addr replace "$CP_IP/24" dev br-ul
}

cp_up() {
	local c=$DIR/cp api=https://$CP_IP:$API_PORT
	mkdir -p "$c/etcd"
	chmod 700 "$c" "$c/etcd"
	kubeconfig "$api" controller-manager system:kube-controller-manager >"$c/controller-manager.kubeconfig"
	kubeconfig "$api" scheduler system:kube-scheduler >"$c/scheduler.kubeconfig"
	# Holds a system:masters key: not for other users.
	(umask 077 && kubeconfig "https://127.0.0.1:$PORT" admin "$PREFIX-admin" >"$KUBECONFIG_PATH.tmp")
	mv "$KUBECONFIG_PATH.tmp" "$KUBECONFIG_PATH"
	start_daemon etcd "$c/etcd.pid" "$c/etcd.log" nsenter --net="/run/netns/$CP" -- \
		"$BIN/etcd" --name="$CP" --data-dir="$c/etcd" --unsafe-no-fsync \
		--listen-client-urls=http://127.0.0.1:2379 --advertise-client-urls=http://127.0.0.1:2379 \
		--listen-peer-urls=http://127.0.0.1:2380 --initial-advertise-peer-urls=http://127.0.0.1:2380 \
		--initial-cluster="$CP=http://127.0.0.1:2380" --listen-metrics-urls=http://127.0.0.1:2381
	local p=$DIR/pki
	start_daemon kube-apiserver "$c/kube-apiserver.pid" "$c/kube-apiserver.log" nsenter --net="/run/netns/$CP" -- \
		"$BIN/kube-apiserver" --etcd-servers=http://127.0.0.1:2379 \
		--bind-address="$CP_IP" --secure-port="$API_PORT" --advertise-address="$CP_IP" \
		--tls-cert-file="$p/apiserver.crt" --tls-private-key-file="$p/apiserver.key" \
		--client-ca-file="$p/ca.crt" \
		--kubelet-client-certificate="$p/apiserver-kubelet-client.crt" \
		--kubelet-client-key="$p/apiserver-kubelet-client.key" \
		--kubelet-preferred-address-types=InternalIP \
		--service-account-issuer=https://kubernetes.default.svc.cluster.local \
		--service-account-key-file="$p/sa.pub" --service-account-signing-key-file="$p/sa.key" \
		--service-cluster-ip-range="$SERVICE_CIDR" \
		--authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
		--allow-privileged=true
	start_relay
	wait_for "kube-apiserver /readyz (log: $c/kube-apiserver.log)" \
		"$BIN/kubectl" --kubeconfig="$KUBECONFIG_PATH" get --raw /readyz
	start_daemon kube-controller-manager "$c/kube-controller-manager.pid" "$c/kube-controller-manager.log" \
		nsenter --net="/run/netns/$CP" -- "$BIN/kube-controller-manager" \
		--kubeconfig="$c/controller-manager.kubeconfig" \
		--authentication-kubeconfig="$c/controller-manager.kubeconfig" \
		--authorization-kubeconfig="$c/controller-manager.kubeconfig" \
		--bind-address=127.0.0.1 --leader-elect=false \
		--service-account-private-key-file="$p/sa.key" --root-ca-file="$p/ca.crt" \
		--use-service-account-credentials \
		--cluster-signing-cert-file="$p/ca.crt" --cluster-signing-key-file="$p/ca.key" \
		--allocate-node-cidrs=false --service-cluster-ip-range="$SERVICE_CIDR"
	start_daemon kube-scheduler "$c/kube-scheduler.pid" "$c/kube-scheduler.log" \
		nsenter --net="/run/netns/$CP" -- "$BIN/kube-scheduler" \
		--kubeconfig="$c/scheduler.kubeconfig" \
		--authentication-kubeconfig="$c/scheduler.kubeconfig" \
		--authorization-kubeconfig="$c/scheduler.kubeconfig" \
		--bind-address=127.0.0.1 --leader-elect=false
}

# start_relay: 127.0.0.1:PORT in the root netns → CP_IP:API_PORT in the control-plane
# netns, one nsenter'd socat per connection.
start_relay() {
	local c=$DIR/cp
	printf '#!/bin/sh\nexec nsenter --net=/run/netns/%s -- socat STDIO TCP:%s:%s\n' "$CP" "$CP_IP" "$API_PORT" >"$c/relay-connect"
	chmod 755 "$c/relay-connect"
	start_daemon socat "$c/relay.pid" "$c/relay.log" \
		socat "TCP-LISTEN:$PORT,bind=127.0.0.1,reuseaddr,fork" "EXEC:$c/relay-connect"
}

cp_down() {
	local c=$DIR/cp
	stop_pid "$c/relay.pid" socat group
	stop_pid "$c/kube-scheduler.pid" kube-scheduler
	stop_pid "$c/kube-controller-manager.pid" kube-controller-manager
	stop_pid "$c/kube-apiserver.pid" kube-apiserver
	stop_pid "$c/etcd.pid" etcd
	[[ -e /run/netns/$CP ]] && ip netns del "$CP" 2>/dev/null || true
}

# ---------------------------------------------------------------------------- cgroups

# cgroup_hierarchies: the mount point of every cgroup hierarchy (v1 controllers, the
# named systemd one, the hybrid unified one).
cgroup_hierarchies() { awk '$3 == "cgroup" || $3 == "cgroup2" { print $2 }' /proc/self/mounts; }

cgroup_up() {
	local n=$1 h d
	for h in $(cgroup_hierarchies); do
		for d in "$h/$n" "$h/$n/system"; do
			[[ -d $d ]] || mkdir "$d"
			if [[ -f $h/cpuset.cpus ]]; then # a new cpuset is empty until given CPUs and mems
				[[ -n $(<"$d/cpuset.cpus") ]] || cat "$(dirname "$d")/cpuset.cpus" >"$d/cpuset.cpus"
				[[ -n $(<"$d/cpuset.mems") ]] || cat "$(dirname "$d")/cpuset.mems" >"$d/cpuset.mems"
			fi
		done
	done
}

# cgroup_pids NODE: every process in the node's cgroup tree (any hierarchy).
cgroup_pids() {
	local n=$1 h
	for h in $(cgroup_hierarchies); do
		[[ -d $h/$n ]] || continue
		find "$h/$n" -name cgroup.procs -exec cat {} + 2>/dev/null
	done | sort -un
}

# cgroup_down NODE: kill what is left in the node's cgroup (pods' processes and shims,
# all descendants of the node's containerd), then remove the cgroups, deepest first.
cgroup_down() {
	local n=$1 h i pids
	for ((i = 0; i < 50; i++)); do
		pids=$(cgroup_pids "$n")
		[[ -n $pids ]] || break
		# shellcheck disable=SC2086
		kill -KILL $pids 2>/dev/null || true
		sleep 0.2
	done
	[[ -z $(cgroup_pids "$n") ]] || log "processes left in cgroup /$n: $(cgroup_pids "$n" | tr '\n' ' ')"
	for h in $(cgroup_hierarchies); do
		[[ -d $h/$n ]] || continue
		find "$h/$n" -depth -type d -exec rmdir {} \; 2>/dev/null || log "could not remove cgroup $h/$n"
	done
}

# ---------------------------------------------------------------------------- nodes

node_dir() { echo "$DIR/nodes/$1"; }

node_net_up() {
	local n=$1 i=$2
	[[ -e /run/netns/$n ]] || ip netns add "$n"
	nsenter --net="/run/netns/$n" ip link set lo up
	# Each veth is created in the control-plane netns with its peer straight in the node.
	if ! nsenter --net="/run/netns/$n" ip link show eth0 >/dev/null 2>&1; then
		in_cp ip link del "ul$i" 2>/dev/null || true
		in_cp ip link add "ul$i" type veth peer name eth0 netns "$n"
	fi
	if ! nsenter --net="/run/netns/$n" ip link show eth1 >/dev/null 2>&1; then
		in_cp ip link del "tun$i" 2>/dev/null || true
		in_cp ip link add "tun$i" type veth peer name eth1 netns "$n"
	fi
	in_cp ip link set "ul$i" master br-ul up
	in_cp ip link set "tun$i" master br-tun up
	nsenter --net="/run/netns/$n" ip addr replace "$UL_NET.$i/24" dev eth0
	nsenter --net="/run/netns/$n" ip link set eth0 up
	nsenter --net="/run/netns/$n" ip link set eth1 up
	nsenter --net="/run/netns/$n" ip route replace default via "$CP_IP" dev eth0
}

# mountpoints_up: NODE_PATHS must exist on the host to be mounted over; record what this
# script creates so 'down' removes exactly that.
mountpoints_up() {
	local p d o f=$DIR/mountpoints-created
	# Another cluster that is up created them: adopt its list, so whichever cluster goes
	# down last removes them.
	for o in $(other_cluster_dirs); do
		[[ -f $o/mountpoints-created ]] && cat "$o/mountpoints-created" >>"$f"
	done
	[[ -f $f ]] && awk '!seen[$0]++' "$f" >"$f.tmp" && mv "$f.tmp" "$f"
	for p in "${NODE_PATHS[@]}"; do
		d=
		while IFS= read -r comp; do
			d+=/$comp
			if [[ ! -e $d ]]; then
				mkdir "$d"
				echo "$d" >>"$DIR/mountpoints-created"
			fi
		done < <(tr '/' '\n' <<<"${p#/}")
	done
}

mountpoints_down() {
	local f=$DIR/mountpoints-created d
	[[ -f $f ]] || return 0
	# Removing a directory another mount namespace mounts over detaches that mount: leave
	# them while another cluster's nodes (a mount-namespace pin like ours) exist.
	if [[ -n $(other_cluster_dirs) ]]; then
		log "another cluster is up ($(other_cluster_dirs | tr '\n' ' ')); it removes the mount-point directories"
		rm -f "$f"
		return 0
	fi
	tac "$f" | while IFS= read -r d; do rmdir "$d" 2>/dev/null || true; done
	rm -f "$f"
}

# other_cluster_dirs: the state directories of other clusters that are up (their node
# mount-namespace pins), which share this machine's mount points and sysctls with us.
other_cluster_dirs() {
	findmnt -rn -t nsfs -o TARGET | sed -n 's#^\(.*\)/ns/[^/]*\.mnt$#\1#p' | sort -u | grep -vxF "$DIR" || true
}

ns_dir_up() {
	mkdir -p "$DIR/ns"
	# A mount namespace can only be pinned on a mount that is not shared.
	if ! mountpoint -q "$DIR/ns"; then
		mount --bind "$DIR/ns" "$DIR/ns"
		mount --make-private "$DIR/ns"
	fi
}

# node_ns_up NODE: the node's mount and UTS namespaces, pinned in DIR/ns, with the node's
# directories bind-mounted over NODE_PATHS and a bpffs of its own.
node_ns_up() {
	local n=$1 nd fs p
	nd=$(node_dir "$n")
	fs=$nd/fs
	if [[ -f $nd/ns-ready ]] && findmnt -n "$DIR/ns/$n.mnt" >/dev/null && findmnt -n "$DIR/ns/$n.uts" >/dev/null; then
		return 0
	fi
	node_ns_down "$n" # half-made by a killed 'up'
	for p in "${NODE_PATHS[@]}"; do mkdir -p "$fs$p"; done
	touch "$DIR/ns/$n.mnt" "$DIR/ns/$n.uts"
	# The new mount namespace starts as a copy of ours, pins (nsfs mounts) included: drop
	# them, or this node would keep other network namespaces (and the earlier nodes'
	# mount namespaces) alive after their owners delete them.
	nsenter --net="/run/netns/$n" -- unshare --mount="$DIR/ns/$n.mnt" --uts="$DIR/ns/$n.uts" \
		--propagation private -- bash -euc '
			n=$1 fs=$2
			shift 2
			echo "$n" >/proc/sys/kernel/hostname
			findmnt -rn -t nsfs -o TARGET | sort -r | while read -r m; do umount -l "$m"; done
			for p in "$@"; do mount --bind "$fs$p" "$p"; done
			mount -t bpf bpffs /sys/fs/bpf
			# Shared inside the node only (the namespace was made private, so nothing
			# propagates to the host): pods ask for Bidirectional (bpffs) and
			# HostToContainer (/run/netns) propagation, which containerd refuses on
			# private mounts.
			mount --make-rshared /
		' _ "$n" "$fs" "${NODE_PATHS[@]}"
	touch "$nd/ns-ready"
}

node_ns_down() {
	local n=$1 f
	for f in "$DIR/ns/$n.mnt" "$DIR/ns/$n.uts"; do
		while findmnt -n "$f" >/dev/null 2>&1; do umount "$f" || break; done
		rm -f "$f"
	done
	rm -f "$(node_dir "$n")/ns-ready"
}

write_node_files() {
	local n=$1 i=$2 nd fs k
	nd=$(node_dir "$n")
	fs=$nd/fs
	mkdir -p "$fs/etc/kubernetes/pki"
	cat >"$fs/etc/sdncni/node.env" <<EOF
# Generated by hack/k8s-cluster.sh.
SDNCNI_NODE_NAME=$n
SDNCNI_NODE_IP=$UL_NET.$i
SDNCNI_TUNNEL_IF=eth1
SDNCNI_TUNNEL_IP=$TUN_NET.$i/24
EOF
	cp "$DIR/pki/ca.crt" "$fs/etc/kubernetes/pki/ca.crt"
	kubeconfig "https://$CP_IP:$API_PORT" "kubelet-$n" "system:node:$n" >"$fs/etc/kubernetes/kubelet.conf"
	chmod 600 "$fs/etc/kubernetes/kubelet.conf"
	# Pods with dnsPolicy Default get this; there is no upstream resolver on the node network.
	echo "# no upstream resolver (hack/k8s-cluster.sh)" >"$fs/etc/kubernetes/resolv.conf"
	cat >"$fs/etc/kubernetes/kubelet-config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /$n
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
clusterDNS: [$CLUSTER_DNS]
clusterDomain: cluster.local
resolvConf: /etc/kubernetes/resolv.conf
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: /etc/kubernetes/pki/ca.crt}
authorization: {mode: Webhook}
failSwapOn: false
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
evictionHard: {memory.available: "1Mi", nodefs.available: "1%", nodefs.inodesFree: "1%", imagefs.available: "1%", imagefs.inodesFree: "1%"}
evictionPressureTransitionPeriod: 10s
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
EOF
	mkdir -p "$nd"
	cat >"$nd/containerd.toml" <<EOF
# Generated by hack/k8s-cluster.sh; paths are the node's own (bind mounts in its mount ns).
version = 3
root = "/var/lib/containerd"
state = "/run/containerd"

[grpc]
  address = "/run/containerd/containerd.sock"

[ttrpc]
  address = "/run/containerd/containerd.sock.ttrpc"

[plugins.'io.containerd.internal.v1.opt']
  path = "/var/lib/containerd/opt"

[plugins.'io.containerd.nri.v1.nri']
  disable = true

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "$SANDBOX_IMAGE"

[plugins.'io.containerd.cri.v1.runtime']
  # root here lacks CAP_SYS_RESOURCE: without this runc fails with "can't get final
  # child's PID from pipe: EOF" when lowering a container's oom_score_adj.
  restrict_oom_score_adj = true
  # Pod netns stay under /run/netns, which is the node's own (a bind mount in its mount
  # namespace) and which sdncni-node mounts to reach them.
  netns_mounts_under_state_dir = false
  cdi_spec_dirs = ["/var/lib/containerd/cdi"]
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    conf_dir = "/etc/cni/net.d"
    bin_dirs = ["/opt/cni/bin"]
    # Bring pods' lo up without the reference loopback plugin, which these nodes do not
    # have (a distribution's kubernetes-cni package would bring it).
    use_internal_loopback = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        SystemdCgroup = false
EOF
	# For `hack/k8s-cluster.sh`'s users: nsenter into the node, crictl --config this.
	printf 'runtime-endpoint: unix:///run/containerd/containerd.sock\nimage-endpoint: unix:///run/containerd/containerd.sock\ntimeout: 10\n' >"$nd/crictl.yaml"
}

# node_start_daemon NODE NAME COMMAND...: a daemon in the node's namespaces and in its
# cgroup /NODE/system.
node_start_daemon() {
	local n=$1 name=$2 nd
	shift 2
	nd=$(node_dir "$n")
	start_daemon "$name" "$nd/$name.pid" "$nd/$name.log" bash -c '
		n=$1; shift
		for h in $(awk '\''$3 == "cgroup" || $3 == "cgroup2" { print $2 }'\'' /proc/self/mounts); do
			echo $$ >"$h/$n/system/cgroup.procs"
		done
		exec nsenter --net="/run/netns/$n" --mount="$0/$n.mnt" --uts="$0/$n.uts" -- "$@"
	' "$DIR/ns" "$n" env PATH="$BIN:$PATH" "$@"
}

node_up() {
	local n=$1 i=$2 nd img
	nd=$(node_dir "$n")
	mkdir -p "$nd"
	node_net_up "$n" "$i"
	node_ns_up "$n"
	write_node_files "$n" "$i"
	cgroup_up "$n"
	node_start_daemon "$n" containerd "$BIN/containerd" --config "$nd/containerd.toml"
	wait_for "containerd in $n (log: $nd/containerd.log)" \
		in_node "$n" "$BIN/ctr" --address /run/containerd/containerd.sock version
	for img in "${IMAGES[@]}"; do
		grep -qxF "$img" "$nd/images-imported" 2>/dev/null && continue
		in_node "$n" "$BIN/ctr" --address /run/containerd/containerd.sock -n k8s.io \
			images import "$img" >>"$nd/images.log" 2>&1 || die "import $img into $n (log: $nd/images.log)"
		echo "$img" >>"$nd/images-imported"
	done
	node_start_daemon "$n" kubelet "$BIN/kubelet" --config=/etc/kubernetes/kubelet-config.yaml \
		--kubeconfig=/etc/kubernetes/kubelet.conf --hostname-override="$n" --node-ip="$UL_NET.$i" --v=2
}

node_down() {
	local n=$1 nd
	nd=$(node_dir "$n")
	stop_pid "$nd/kubelet.pid" kubelet
	stop_pid "$nd/containerd.pid" containerd
	cgroup_down "$n"
	node_ns_down "$n"
	[[ -e /run/netns/$n ]] && ip netns del "$n" 2>/dev/null || true
}

# ---------------------------------------------------------------------------- sysctls

sysctls_save() {
	[[ -f $DIR/sysctls ]] && return 0
	local s o
	# Another cluster's kubelets have changed them already: its record holds the originals.
	for o in $(other_cluster_dirs); do
		if [[ -f $o/sysctls ]]; then
			cp "$o/sysctls" "$DIR/sysctls"
			return 0
		fi
	done
	for s in "${SYSCTLS[@]}"; do
		[[ -e /proc/sys/${s//.//} ]] && echo "$s=$(sysctl -n "$s")"
	done >"$DIR/sysctls.tmp"
	mv "$DIR/sysctls.tmp" "$DIR/sysctls"
}

sysctls_restore() {
	[[ -f $DIR/sysctls ]] || return 0
	local kv
	if [[ -n $(other_cluster_dirs) ]]; then # its kubelets still want them; it restores them
		rm -f "$DIR/sysctls"
		return 0
	fi
	while IFS= read -r kv; do sysctl -q -w "$kv" || log "could not restore $kv"; done <"$DIR/sysctls"
	rm -f "$DIR/sysctls"
}

# ---------------------------------------------------------------------------- commands

node_registered() { "$BIN/kubectl" --kubeconfig="$KUBECONFIG_PATH" get node "$1" >/dev/null 2>&1; }

up() {
	[[ $(id -u) == 0 ]] || die "needs root"
	local t=$SECONDS i
	BIN=$(K8S_VERSION=$K8S_VERSION "$REPO/hack/k8s-binaries.sh" cluster | tail -n1)
	for i in socat runc openssl nsenter unshare; do command -v "$i" >/dev/null || die "$i missing (make deps)"; done
	if [[ -n ${SDNK_IMAGES:-} ]]; then
		read -r -a IMAGES <<<"$SDNK_IMAGES"
	else
		IMAGES=()
		for i in "$REPO"/_output/images/*.tar; do [[ -f $i ]] && IMAGES+=("$i"); done
	fi
	((${#IMAGES[@]} > 0)) || log "warning: no images to import (make images); pods need $SANDBOX_IMAGE"
	save_config
	sysctls_save
	certs
	cp_net_up
	cp_up
	ns_dir_up
	mountpoints_up
	for ((i = 1; i <= NODES; i++)); do node_up "${NODE_NAMES[i - 1]}" "$i"; done
	for i in "${NODE_NAMES[@]}"; do wait_for "node $i to register" node_registered "$i"; done
	log "up in $((SECONDS - t)) s: ${NODE_NAMES[*]} (NotReady until a CNI is installed); KUBECONFIG=$KUBECONFIG_PATH"
	echo "$KUBECONFIG_PATH"
}

down() {
	local n nd
	# Nodes found on disk, not only the configured count (a larger earlier cluster).
	for nd in "$DIR"/nodes/*/; do
		[[ -d $nd ]] || continue
		nd=${nd%/}
		node_down "${nd##*/}"
	done
	for n in "${NODE_NAMES[@]}"; do node_down "$n"; done
	cp_down
	if mountpoint -q "$DIR/ns" 2>/dev/null; then umount "$DIR/ns"; fi
	mountpoints_down
	sysctls_restore
	# Remove only what this script creates, so a mistaken --dir cannot wipe a tree.
	rm -rf "$DIR/nodes" "$DIR/cp" "$DIR/pki" "$DIR/ns" "$DIR/admin.kubeconfig" "$DIR/config"
	if [[ -d $DIR ]] && ! rmdir "$DIR" 2>/dev/null; then
		log "left $DIR in place: it holds files this script did not create"
	fi
}

status() {
	local rc=0 found=0 n
	check() {
		found=1
		if pid_alive "$1" "$2"; then
			printf '%-40s live (pid %s)\n' "$3" "$(<"$1")"
		else
			printf '%-40s dead\n' "$3"
			rc=1
		fi
	}
	if [[ -d $DIR/cp ]]; then
		for n in etcd kube-apiserver kube-controller-manager kube-scheduler; do
			check "$DIR/cp/$n.pid" "$n" "$CP/$n"
		done
		check "$DIR/cp/relay.pid" socat "relay 127.0.0.1:$PORT"
	fi
	for n in "${NODE_NAMES[@]}"; do
		[[ -d $(node_dir "$n") ]] || continue
		check "$(node_dir "$n")/containerd.pid" containerd "$n/containerd"
		check "$(node_dir "$n")/kubelet.pid" kubelet "$n/kubelet"
	done
	if ((found == 0)); then
		echo "nothing running in $DIR"
		return 1
	fi
	return $rc
}

usage() {
	sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
	exit 2
}

main() {
	local cmd=${1:-}
	[[ -n $cmd ]] || usage
	shift
	DIR=${SDNK_DIR:-/var/lib/sdncni-k8s}
	NODES=${SDNK_NODES:-2}
	PORT=${SDNK_PORT:-6443}
	PREFIX=${SDNK_PREFIX:-sdnk}
	K8S_VERSION=${K8S_VERSION:-v1.37.2}
	if [[ $cmd == exec ]]; then
		# exec NODE [--] COMMAND...: run COMMAND inside the node (its net, mount and UTS
		# namespaces), e.g. crictl, ovs-vsctl or ip against the node's own state.
		local node=${1:-}
		[[ -n $node ]] || die "exec NODE [--] COMMAND..."
		shift
		[[ ${1:-} == -- ]] && shift
		[[ -e $DIR/ns/$node.mnt && -e /run/netns/$node ]] || die "no node $node in $DIR"
		in_node "$node" "$@"
		return
	fi
	OPT_GIVEN=0
	[[ -n ${SDNK_NODES:-}${SDNK_PORT:-}${SDNK_PREFIX:-} ]] && OPT_GIVEN=1
	while (($#)); do
		case $1 in
		--dir) DIR=$2; shift 2 ;;
		--nodes) NODES=$2; OPT_GIVEN=1; shift 2 ;;
		--port) PORT=$2; OPT_GIVEN=1; shift 2 ;;
		--prefix) PREFIX=$2; OPT_GIVEN=1; shift 2 ;;
		-h | --help) usage ;;
		*) die "unknown argument $1" ;;
		esac
	done
	[[ $DIR == /* ]] || DIR=$(pwd)/$DIR
	[[ $NODES =~ ^[1-9][0-9]?$ && $NODES -le 253 ]] || die "--nodes $NODES: want 1..99"
	[[ $PREFIX =~ ^[a-z][a-z0-9]{0,7}$ ]] || die "--prefix $PREFIX: want a short lowercase name"
	# 'down' and 'status' act on the cluster as it was brought up.
	[[ $cmd == up ]] && OPT_GIVEN=1
	load_config
	case $cmd in
	up) up ;;
	down) down ;;
	status) status ;;
	kubeconfig)
		[[ -f $KUBECONFIG_PATH ]] || die "no cluster in $DIR (run 'up')"
		echo "$KUBECONFIG_PATH"
		;;
	*) usage ;;
	esac
}

main "$@"
