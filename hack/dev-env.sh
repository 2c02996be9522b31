#!/usr/bin/env bash
# dev-env.sh — a local OVS/OVN environment with real daemons, in one private directory.
#
#   hack/dev-env.sh deps                      install missing Debian packages (root)
#   hack/dev-env.sh up     [options]          start OVN central + one node (idempotent)
#   hack/dev-env.sh central-up [options]      start OVN central alone: NB, SB, ovn-northd
#                                             (no node, no ovs-vswitchd; for ovn-trace)
#   hack/dev-env.sh node-up [options]         start one more node against DIR's central
#   hack/dev-env.sh status [options]          live/dead per daemon; non-zero if any is dead
#   hack/dev-env.sh restart-ovsdb [options]   restart the node's Open_vSwitch ovsdb-server
#   hack/dev-env.sh node-down [options]       stop one node (its netns, bridges, daemons)
#   hack/dev-env.sh down   [options]          stop everything under DIR and remove DIR
#   hack/dev-env.sh supervise-vswitchd [options]  (internal, started by node-up) run the
#                                             node's ovs-vswitchd and restart it when it dies
#
# Options (or environment):
#   --dir DIR          (SDNCNI_DEV_DIR, default /run/sdncni-dev) every db/run/log/pid/ctl file
#   --netns NAME       (SDNCNI_NETNS, default sdncni-node1) the simulated node
#   --system-id ID     (default: the netns name) OVN chassis name
#   --encap-ip IP[/LEN] (default 127.0.0.1, inside the node netns) Geneve endpoint
#   --underlay NETNS   put the node on an underlay: a Linux bridge in network namespace
#                      NETNS (created if missing), joined by a veth to the node's br-phy,
#                      a netdev OVS bridge whose internal port holds the encap IP (LEN
#                      default 24). Needed for Geneve between nodes: the userspace
#                      datapath routes and ARPs for its tunnels itself, through a bridge
#                      of its own datapath.
#   --kernel-underlay IP/LEN  with --underlay: a second veth from the node to the
#                      underlay bridge, kernel-owned (not an OVS port), holding IP/LEN.
#                      The cross-node fast path's VXLAN runs over it, as it would over
#                      a real node's NIC; br-phy's address belongs to OVS's userspace
#                      datapath, and a kernel tunnel routed through it would cross
#                      ovs-vswitchd after all.
#
# Layout: DIR/central/ holds the OVN NB and SB ovsdb-servers and ovn-northd (root netns);
# DIR/node-NAME/ holds a node's conf.db ovsdb-server (root netns) and its ovs-vswitchd and
# ovn-controller, which run inside the network namespace NAME (entered with nsenter, not
# 'ip netns exec', so /sys and bpffs pins stay shared). Everything talks over unix sockets,
# which work across network namespaces. 'up' writes DIR/env (sourceable); each node also
# gets DIR/node-NAME/env. With --underlay, DIR/underlay-NETNS/ marks the underlay netns:
#
#   node netns A                 underlay netns U              node netns B
#   br-int (geneve port to B)   +--------------------+         br-int (geneve port to A)
#   br-phy (encap IP A)         |        br-ul       |         br-phy (encap IP B)
#     ul0 -------- veth -------- u-<A>          u-<B> -------- veth -------- ul0
#   ulk0 (kernel IP A) - veth -- k-<A>          k-<B> -------- veth - ulk0 (kernel IP B)
#                               +--------------------+
#   (ulk0 only with --kernel-underlay)
#
# A node's ovs-vswitchd runs under a supervisor (this script, DIR/node-NAME/
# ovs-vswitchd-supervisor.pid and .log): Debian 12's OVS 3.1.0 aborts now and then under
# connection churn (docs/deploy.md, "ovs-vswitchd crashes"). When ovs-vswitchd dies, the
# supervisor starts it again at once and gives it back br-phy's address; it leaves it dead
# after an exit on request (status 0, SIGTERM, SIGINT) or more than 5 deaths in 5 minutes.
set -euo pipefail

DEFAULT_DIR=/run/sdncni-dev
DEFAULT_NETNS=sdncni-node1
BRIDGE=br-int
PHY_BRIDGE=br-phy     # a node's underlay bridge (netdev); its internal port holds the encap IP
UL_BRIDGE=br-ul       # the Linux bridge in the underlay netns
UL_NODE_IF=ul0        # the node's end of its underlay veth, a port of br-phy
UL_KERNEL_IF=ulk0     # the node's kernel-owned underlay link (--kernel-underlay)
PACKAGES=(openvswitch-switch ovn-central ovn-host iperf3 clang llvm libbpf-dev bpftool iproute2 ethtool iputils-ping util-linux runc socat conntrack openssl jq iptables curl mmdebstrap busybox-static gcc libc6-dev)
VSWITCH_SCHEMA=/usr/share/openvswitch/vswitch.ovsschema
NB_SCHEMA=/usr/share/ovn/ovn-nb.ovsschema
SB_SCHEMA=/usr/share/ovn/ovn-sb.ovsschema
WAIT_SECS=${SDNCNI_DEV_WAIT_SECS:-30}
SELF=$(realpath "${BASH_SOURCE[0]}")
VSWITCHD_MAX_DEATHS=5     # more deaths than this within VSWITCHD_DEATH_WINDOW: give up
VSWITCHD_DEATH_WINDOW=300 # seconds

log() { echo "dev-env: $*" >&2; }
die() { log "error: $*"; exit 1; }

# use_dirs points every OVS/OVN tool at DIR so nothing touches the distribution defaults.
use_dirs() {
	local d=$1
	export OVS_RUNDIR=$d OVS_DBDIR=$d OVS_LOGDIR=$d OVS_PKGDATADIR=/usr/share/openvswitch
	export OVN_RUNDIR=$d OVN_DBDIR=$d OVN_LOGDIR=$d
}

# ---------------------------------------------------------------------------- processes

# read_pid, proc_is, pid_alive, stop_pid, wait_for: shared with the other hack/ scripts.
# shellcheck source=lib/proc.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/proc.sh"

# ---------------------------------------------------------------------------- paths

central_dir() { echo "$1/central"; }
node_dir() { echo "$1/node-$2"; }
underlay_dir() { echo "$1/underlay-$2"; }
nb_sock() { echo "$(central_dir "$1")/ovnnb_db.sock"; }
sb_sock() { echo "$(central_dir "$1")/ovnsb_db.sock"; }

# ---------------------------------------------------------------------------- central

# start_ovsdb DB SOCK PIDFILE LOG CTL: a standalone ovsdb-server on a unix socket.
start_ovsdb() {
	local db=$1 sock=$2 pidfile=$3 logf=$4 ctl=$5
	pid_alive "$pidfile" ovsdb-server && return 0
	ovsdb-server "$db" --remote="punix:$sock" --pidfile="$pidfile" --log-file="$logf" \
		--unixctl="$ctl" --detach --no-chdir -vconsole:off
	wait_for "ovsdb-server on $sock" ovsdb-client --timeout=5 list-dbs "unix:$sock"
}

# central_up DIR: OVN NB and SB ovsdb-servers and ovn-northd, files in DIR/central.
central_up() {
	local dir=$1 c
	c=$(central_dir "$dir")
	mkdir -p "$c"
	use_dirs "$c"
	[[ -f $c/ovnnb_db.db ]] || ovsdb-tool create "$c/ovnnb_db.db" "$NB_SCHEMA"
	[[ -f $c/ovnsb_db.db ]] || ovsdb-tool create "$c/ovnsb_db.db" "$SB_SCHEMA"
	start_ovsdb "$c/ovnnb_db.db" "$c/ovnnb_db.sock" "$c/ovnnb_db.pid" "$c/ovnnb_db.log" "$c/ovnnb_db.ctl"
	start_ovsdb "$c/ovnsb_db.db" "$c/ovnsb_db.sock" "$c/ovnsb_db.pid" "$c/ovnsb_db.log" "$c/ovnsb_db.ctl"
	wait_for "OVN NB" ovn-nbctl --db="unix:$c/ovnnb_db.sock" --timeout=5 show
	ovn-nbctl --db="unix:$c/ovnnb_db.sock" --timeout=5 --no-wait init
	wait_for "OVN SB" ovn-sbctl --db="unix:$c/ovnsb_db.sock" --timeout=5 show
	if ! pid_alive "$c/ovn-northd.pid" ovn-northd; then
		ovn-northd --ovnnb-db="unix:$c/ovnnb_db.sock" --ovnsb-db="unix:$c/ovnsb_db.sock" \
			--pidfile="$c/ovn-northd.pid" --log-file="$c/ovn-northd.log" \
			--unixctl="$c/ovn-northd.ctl" --detach --no-chdir -vconsole:off
	fi
	wait_for "ovn-northd" test -S "$c/ovn-northd.ctl"
}

central_down() {
	local dir=$1 c
	c=$(central_dir "$dir")
	[[ -d $c ]] || return 0
	use_dirs "$c"
	stop_pid "$c/ovn-northd.pid" ovn-northd
	stop_pid "$c/ovnsb_db.pid" ovsdb-server
	stop_pid "$c/ovnnb_db.pid" ovsdb-server
}

# ---------------------------------------------------------------------------- node

# in_netns NETNS COMMAND...: run COMMAND in the node's network namespace only.
in_netns() {
	local ns=$1
	shift
	nsenter --net="/run/netns/$ns" -- "$@"
}

ensure_netns() {
	local nd=$1 ns=$2
	if [[ ! -e /run/netns/$ns ]]; then
		ip netns add "$ns"
		touch "$nd/netns-created"
	fi
	in_netns "$ns" ip link set lo up
}

node_ovsdb_up() {
	local nd=$1
	use_dirs "$nd"
	[[ -f $nd/conf.db ]] || ovsdb-tool create "$nd/conf.db" "$VSWITCH_SCHEMA"
	start_ovsdb "$nd/conf.db" "$nd/db.sock" "$nd/ovsdb-server.pid" "$nd/ovsdb-server.log" "$nd/ovsdb-server.ctl"
	ovs-vsctl --db="unix:$nd/db.sock" --timeout=5 --no-wait init
	wait_for "node ovsdb-server" ovs-vsctl --db="unix:$nd/db.sock" --timeout=5 show
}

# node_up DIR NETNS SYSTEM_ID ENCAP_IP[/LEN] [UNDERLAY [KERNEL_IP/LEN]]: one simulated
# node in network namespace NETNS, with files in DIR/node-NETNS, registered as an OVN
# chassis with the central in DIR/central; with UNDERLAY, wired to that underlay netns
# (see underlay_up), and with KERNEL_IP also by a kernel-owned link (node_kernel_underlay_up).
node_up() {
	local dir=$1 ns=$2 sysid=$3 encap_cidr=$4 underlay=${5:-} kernel_cidr=${6:-} encap nd db vsctl
	encap=${encap_cidr%%/*}
	nd=$(node_dir "$dir" "$ns")
	db="unix:$nd/db.sock"
	mkdir -p "$nd"
	[[ -S $(sb_sock "$dir") ]] || die "no OVN central in $dir (run 'up' first)"
	ensure_netns "$nd" "$ns"
	node_ovsdb_up "$nd"
	vsctl=(ovs-vsctl --db="$db" --timeout=5)
	"${vsctl[@]}" --no-wait init
	# The userspace datapath reads this only at start.
	"${vsctl[@]}" --no-wait set Open_vSwitch . other_config:userspace-tso-enable=true
	"${vsctl[@]}" --no-wait set Open_vSwitch . \
		external_ids:system-id="$sysid" \
		external_ids:hostname="$sysid" \
		external_ids:ovn-remote="unix:$(sb_sock "$dir")" \
		external_ids:ovn-encap-type=geneve \
		external_ids:ovn-encap-ip="$encap" \
		external_ids:ovn-bridge="$BRIDGE"
	vswitchd_up "$dir" "$ns"
	"${vsctl[@]}" --may-exist add-br "$BRIDGE" -- \
		set Bridge "$BRIDGE" datapath_type=netdev fail_mode=secure
	if [[ -n $underlay ]]; then
		[[ $encap != 127.* ]] || die "--underlay needs a non-loopback --encap-ip"
		[[ $encap_cidr == */* ]] || encap_cidr=$encap/24
		underlay_up "$dir" "$underlay"
		node_underlay_up "$dir" "$ns" "$underlay" "$encap_cidr"
		if [[ -n $kernel_cidr ]]; then
			node_kernel_underlay_up "$dir" "$ns" "$underlay" "$kernel_cidr"
		fi
	elif [[ -n $kernel_cidr ]]; then
		die "--kernel-underlay needs --underlay"
	fi
	if ! pid_alive "$nd/ovn-controller.pid" ovn-controller; then
		# ovn-controller 23.03 has no --unixctl: OVN_RUNDIR (set by use_dirs) places its
		# control socket, OVS_RUNDIR tells it where br-int.mgmt is.
		in_netns "$ns" ovn-controller "$db" --pidfile="$nd/ovn-controller.pid" \
			--log-file="$nd/ovn-controller.log" --detach --no-chdir -vconsole:off
	fi
	wait_for "chassis $sysid in OVN SB" chassis_registered "$dir" "$sysid"
	write_node_env "$dir" "$ns" "$sysid" "$encap" "$underlay" "${kernel_cidr%%/*}" >"$nd/env"
}

# underlay_up DIR UNDERLAY: the underlay network namespace with its Linux bridge (a
# switch between the nodes' underlay veths), created if missing.
underlay_up() {
	local dir=$1 ul=$2 ud
	ud=$(underlay_dir "$dir" "$ul")
	mkdir -p "$ud"
	if [[ ! -e /run/netns/$ul ]]; then
		ip netns add "$ul"
		touch "$ud/netns-created"
	fi
	in_netns "$ul" ip link set lo up
	in_netns "$ul" ip link show "$UL_BRIDGE" >/dev/null 2>&1 ||
		in_netns "$ul" ip link add "$UL_BRIDGE" type bridge
	in_netns "$ul" ip link set "$UL_BRIDGE" up
}

# ul_peer_name NETNS: the underlay netns's end of node NETNS's veth (≤ 15 chars).
ul_peer_name() { echo "u-$(printf '%s' "$1" | cksum | cut -d' ' -f1)" | cut -c1-15; }

# node_underlay_up DIR NETNS UNDERLAY ENCAP/LEN: a veth from the node's ul0 to the
# underlay bridge (created directly in the two namespaces, never in the root one), ul0
# a port of the netdev bridge br-phy, and the encap IP on br-phy's internal port, where
# the userspace datapath's tunnel routing finds it.
node_underlay_up() {
	local dir=$1 ns=$2 ul=$3 cidr=$4 nd peer db i
	nd=$(node_dir "$dir" "$ns")
	db="unix:$nd/db.sock"
	peer=$(ul_peer_name "$ns")
	# The address goes with it: the supervisor puts it back after a restart.
	echo "$ul $peer $cidr" >"$nd/underlay"
	if ! in_netns "$ns" ip link show "$UL_NODE_IF" >/dev/null 2>&1; then
		in_netns "$ns" ip link add "$UL_NODE_IF" type veth peer name "$peer" netns "$ul"
	fi
	in_netns "$ul" ip link set "$peer" master "$UL_BRIDGE" up
	in_netns "$ns" ip link set "$UL_NODE_IF" up
	# ul0 stays a kernel link (the userspace datapath reads it with AF_PACKET), and a
	# kernel answers ARP for any of its addresses on any link: ul0 would answer for the
	# encap IP too, with its own MAC, and a peer's OVS learning that MAC as the tunnel's
	# next hop sends Geneve to this node's kernel instead of its OVS (docs/development.md).
	in_netns "$ns" sysctl -qw "net.ipv4.conf.$UL_NODE_IF.arp_ignore=8"
	ovs-vsctl --db="$db" --timeout=5 --may-exist add-br "$PHY_BRIDGE" -- \
		set Bridge "$PHY_BRIDGE" datapath_type=netdev -- \
		--may-exist add-port "$PHY_BRIDGE" "$UL_NODE_IF"
	wait_for "$PHY_BRIDGE internal port in $ns" in_netns "$ns" ip link show "$PHY_BRIDGE"
	in_netns "$ns" ip addr replace "$cidr" dev "$PHY_BRIDGE"
	in_netns "$ns" ip link set "$PHY_BRIDGE" up
}

# ul_kernel_peer_name NETNS: the underlay netns's end of node NETNS's kernel link.
ul_kernel_peer_name() { echo "k-$(printf '%s' "$1" | cksum | cut -d' ' -f1)" | cut -c1-15; }

# node_kernel_underlay_up DIR NETNS UNDERLAY IP/LEN: a veth from the node's ulk0 to the
# underlay bridge, owned by the kernel (no OVS port), with IP/LEN on ulk0: what a real
# node's NIC is to the kernel's VXLAN. Idempotent.
node_kernel_underlay_up() {
	local dir=$1 ns=$2 ul=$3 cidr=$4 nd peer
	[[ $cidr == */* ]] || cidr=$cidr/24
	nd=$(node_dir "$dir" "$ns")
	peer=$(ul_kernel_peer_name "$ns")
	echo "$ul $peer" >"$nd/kernel-underlay"
	if ! in_netns "$ns" ip link show "$UL_KERNEL_IF" >/dev/null 2>&1; then
		in_netns "$ns" ip link add "$UL_KERNEL_IF" type veth peer name "$peer" netns "$ul"
	fi
	in_netns "$ul" ip link set "$peer" master "$UL_BRIDGE" up
	# On the same L2 as ul0: it answers ARP only for its own address, not br-phy's encap
	# IP (as a real node's second NIC on one segment should, "ARP flux").
	in_netns "$ns" sysctl -qw "net.ipv4.conf.$UL_KERNEL_IF.arp_ignore=1"
	in_netns "$ns" ip addr replace "$cidr" dev "$UL_KERNEL_IF"
	in_netns "$ns" ip link set "$UL_KERNEL_IF" up
}

# node_underlay_down DIR NETNS: delete the node's underlay veths (br-phy goes with the
# node's bridges).
node_underlay_down() {
	local dir=$1 ns=$2 nd ul peer f ifname
	nd=$(node_dir "$dir" "$ns")
	for f in underlay kernel-underlay; do
		[[ -f $nd/$f ]] || continue
		read -r ul peer _ <"$nd/$f"
		ifname=$UL_NODE_IF
		[[ $f == underlay ]] || ifname=$UL_KERNEL_IF
		if [[ -e /run/netns/$ul ]]; then
			in_netns "$ul" ip link del "$peer" 2>/dev/null || true
		fi
		if [[ -e /run/netns/$ns ]]; then
			in_netns "$ns" ip link del "$ifname" 2>/dev/null || true
		fi
	done
}

# underlays_down DIR: remove every underlay no node of DIR uses any more.
underlays_down() {
	local dir=$1 ud ul f used
	for ud in "$dir"/underlay-*/; do
		[[ -d $ud ]] || continue
		ud=${ud%/}
		ul=${ud##*/underlay-}
		used=0
		for f in "$dir"/node-*/underlay; do
			[[ -f $f ]] && [[ $(cut -d' ' -f1 "$f") == "$ul" ]] && used=1
		done
		((used == 0)) || continue
		if [[ -e $ud/netns-created ]]; then
			ip netns del "$ul" 2>/dev/null || true
		fi
		rm -rf "$ud"
	done
}

# ---------------------------------------------------------------------------- ovs-vswitchd

# vswitchd_ready ND: the ovs-vswitchd that ND's pidfile names is alive and answers.
vswitchd_ready() {
	pid_alive "$1/ovs-vswitchd.pid" ovs-vswitchd &&
		ovs-appctl -t "$1/ovs-vswitchd.ctl" --timeout=5 version >/dev/null 2>&1
}

# vswitchd_up DIR NETNS: start the node's ovs-vswitchd under its supervisor
# (supervise_vswitchd) unless the supervisor runs, and wait until ovs-vswitchd answers.
vswitchd_up() {
	local dir=$1 ns=$2 nd
	nd=$(node_dir "$dir" "$ns")
	if ! pid_alive "$nd/ovs-vswitchd-supervisor.pid" bash; then
		if pid_alive "$nd/ovs-vswitchd.pid" ovs-vswitchd; then
			log "ovs-vswitchd of $ns runs without a supervisor (an older dev-env.sh started it): nothing restarts it"
			return 0
		fi
		# A session of its own and none of our stdio: whoever runs us (a test reading our
		# output through a pipe) must not wait for it.
		setsid "$BASH" "$SELF" supervise-vswitchd --dir "$dir" --netns "$ns" \
			</dev/null >>"$nd/ovs-vswitchd-supervisor.log" 2>&1 &
	fi
	wait_for "ovs-vswitchd in $ns" vswitchd_ready "$nd"
}

# supervise_vswitchd DIR NETNS: run the node's ovs-vswitchd in NETNS (in the foreground,
# so its exit status reaches us) and start it again at once whenever it dies, then
# vswitchd_restore. It stays dead after an exit on request (status 0: 'ovs-appctl exit';
# SIGTERM, SIGINT: stop_pid, kill) and after more than VSWITCHD_MAX_DEATHS deaths in
# VSWITCHD_DEATH_WINDOW seconds, as the DaemonSet's openvswitch container does.
# SIGTERM stops the supervisor alone: node_down stops it first, then deletes the bridges
# (which needs ovs-vswitchd), then stops ovs-vswitchd by its pidfile.
supervise_vswitchd() {
	local dir=$1 ns=$2 nd fd status now d deaths=() recent
	nd=$(node_dir "$dir" "$ns")
	[[ -d $nd ]] || die "no node $ns in $dir"
	use_dirs "$nd"
	# Keep nothing our starter had open (a test's lock file, a pipe) for the node's lifetime;
	# ovs-vswitchd inherits what we hold. 255 is this script.
	for fd in /proc/"$BASHPID"/fd/*; do
		fd=${fd##*/}
		if ((fd > 2 && fd != 255)); then exec {fd}>&-; fi
	done
	echo "$BASHPID" >"$nd/ovs-vswitchd-supervisor.pid"
	child=
	trap 'supervisor_exit "$nd"' TERM INT HUP
	while :; do
		# nsenter execs ovs-vswitchd: $! is ovs-vswitchd itself.
		nsenter --net="/run/netns/$ns" -- ovs-vswitchd "unix:$nd/db.sock" \
			--pidfile="$nd/ovs-vswitchd.pid" --log-file="$nd/ovs-vswitchd.log" \
			--unixctl="$nd/ovs-vswitchd.ctl" --no-chdir -vconsole:off &
		child=$!
		if ((${#deaths[@]} > 0)); then
			if vswitchd_restore "$dir" "$ns"; then
				log "$(date -u +%FT%TZ) ovs-vswitchd of node $ns exited (status $status), restarted as $child"
			else
				log "$(date -u +%FT%TZ) ovs-vswitchd of node $ns exited (status $status), restarted as $child; restoring br-phy failed"
			fi
		fi
		status=0
		wait "$child" || status=$?
		child=
		case $status in
		0 | 130 | 143)
			log "$(date -u +%FT%TZ) ovs-vswitchd of node $ns exited (status $status) on request; not restarting"
			rm -f "$nd/ovs-vswitchd-supervisor.pid"
			exit 0
			;;
		esac
		now=$(date +%s)
		recent=()
		for d in "${deaths[@]}" "$now"; do
			if ((now - d < VSWITCHD_DEATH_WINDOW)); then recent+=("$d"); fi
		done
		deaths=("${recent[@]}")
		if ((${#deaths[@]} > VSWITCHD_MAX_DEATHS)); then
			log "$(date -u +%FT%TZ) ovs-vswitchd of node $ns exited (status $status), ${#deaths[@]} deaths in ${VSWITCHD_DEATH_WINDOW}s: giving up"
			rm -f "$nd/ovs-vswitchd-supervisor.pid"
			exit 1
		fi
	done
}

# supervisor_exit ND: the supervisor's SIGTERM: leave ovs-vswitchd running (node_down
# stops it by its pidfile), but only once that pidfile names it.
supervisor_exit() {
	local nd=$1 i state
	for ((i = 0; i < 50 && ${#child} > 0; i++)); do
		state=$(sed -n 's/^.*) \(.\).*$/\1/p' "/proc/$child/stat" 2>/dev/null) || break
		[[ -n $state && $state != Z && $state != X ]] || break
		[[ $(read_pid "$nd/ovs-vswitchd.pid") != "$child" ]] || break
		sleep 0.1
	done
	rm -f "$nd/ovs-vswitchd-supervisor.pid"
	exit 0
}

# vswitchd_restore DIR NETNS: give a restarted ovs-vswitchd what node_up set up outside
# the Open_vSwitch database and what does not outlive ovs-vswitchd: br-phy's address
# (on its internal port) and link state, with --underlay. Returns once ovs-vswitchd has
# applied the database (bridges and ports back). Runs in the supervisor: returns
# non-zero on failure, never exits.
vswitchd_restore() {
	local dir=$1 ns=$2 nd cidr
	nd=$(node_dir "$dir" "$ns")
	retry "$WAIT_SECS" vswitchd_ready "$nd" || return 1
	# Without --no-wait, ovs-vsctl waits for ovs-vswitchd to apply the database.
	ovs-vsctl --db="unix:$nd/db.sock" --timeout="$WAIT_SECS" init || return 1
	[[ -f $nd/underlay ]] || return 0
	read -r _ _ cidr <"$nd/underlay" && [[ -n $cidr ]] || return 1
	retry "$WAIT_SECS" in_netns "$ns" ip link show "$PHY_BRIDGE" || return 1
	in_netns "$ns" ip addr replace "$cidr" dev "$PHY_BRIDGE" || return 1
	in_netns "$ns" ip link set "$PHY_BRIDGE" up
}

# retry SECS COMMAND...: until COMMAND succeeds, at most SECS seconds; wait_for that
# returns non-zero instead of exiting.
retry() {
	local secs=$1 i
	shift
	for ((i = 0; i < secs * 5; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	return 1
}

chassis_registered() {
	local dir=$1 sysid=$2 out
	out=$(ovn-sbctl --db="unix:$(sb_sock "$dir")" --timeout=5 --bare --columns=name \
		find Chassis name="$sysid")
	[[ $out == "$sysid" ]]
}

# node_down DIR NETNS: delete bridges (so netdev taps go away), unregister the chassis,
# stop the node's daemons, delete the netns if this script created it.
node_down() {
	local dir=$1 ns=$2 nd db sysid br
	nd=$(node_dir "$dir" "$ns")
	[[ -d $nd ]] || return 0
	use_dirs "$nd"
	db="unix:$nd/db.sock"
	# First, so that nothing starts ovs-vswitchd again while the node goes down.
	stop_pid "$nd/ovs-vswitchd-supervisor.pid" bash
	sysid=
	if pid_alive "$nd/ovsdb-server.pid" ovsdb-server; then
		sysid=$(ovs-vsctl --db="$db" --timeout=5 --if-exists get Open_vSwitch . \
			external_ids:system-id 2>/dev/null | tr -d '"') || true
		if pid_alive "$nd/ovs-vswitchd.pid" ovs-vswitchd; then
			for br in $(ovs-vsctl --db="$db" --timeout=5 list-br 2>/dev/null || true); do
				ovs-vsctl --db="$db" --timeout=10 --if-exists del-br "$br" || log "del-br $br failed"
			done
		fi
	fi
	stop_pid "$nd/ovn-controller.pid" ovn-controller
	if [[ -n $sysid && -S $(sb_sock "$dir") ]]; then
		ovn-sbctl --db="unix:$(sb_sock "$dir")" --timeout=5 --if-exists chassis-del "$sysid" ||
			log "chassis-del $sysid failed"
	fi
	stop_pid "$nd/ovs-vswitchd.pid" ovs-vswitchd
	stop_pid "$nd/ovsdb-server.pid" ovsdb-server
	node_underlay_down "$dir" "$ns"
	if [[ -e $nd/netns-created ]]; then
		ip netns del "$ns" 2>/dev/null || true
	fi
	rm -rf "$nd"
	underlays_down "$dir"
}

# restart_ovsdb DIR NETNS: stop the node's conf.db ovsdb-server and start it again on the
# same database and socket (clients must reconnect).
restart_ovsdb() {
	local dir=$1 ns=$2 nd
	nd=$(node_dir "$dir" "$ns")
	[[ -f $nd/conf.db ]] || die "no node $ns in $dir"
	use_dirs "$nd"
	stop_pid "$nd/ovsdb-server.pid" ovsdb-server
	rm -f "$nd/db.sock"
	node_ovsdb_up "$nd"
}

# ---------------------------------------------------------------------------- env, status

write_node_env() {
	local dir=$1 ns=$2 sysid=$3 encap=$4 underlay=${5:-} kernel_ip=${6:-} c nd
	c=$(central_dir "$dir")
	nd=$(node_dir "$dir" "$ns")
	cat <<EOF
# Generated by hack/dev-env.sh; source it.
SDNCNI_DEV_DIR=$dir
SDNCNI_NETNS=$ns
SDNCNI_NETNS_PATH=/run/netns/$ns
SDNCNI_NODE_DIR=$nd
SDNCNI_OVS_DB=unix:$nd/db.sock
SDNCNI_NB_DB=unix:$c/ovnnb_db.sock
SDNCNI_SB_DB=unix:$c/ovnsb_db.sock
SDNCNI_BRIDGE=$BRIDGE
SDNCNI_SYSTEM_ID=$sysid
SDNCNI_ENCAP_IP=$encap
SDNCNI_UNDERLAY_NETNS=$underlay
SDNCNI_KERNEL_UNDERLAY_IP=$kernel_ip
SDNCNI_NB_PIDFILE=$c/ovnnb_db.pid
SDNCNI_SB_PIDFILE=$c/ovnsb_db.pid
SDNCNI_NORTHD_PIDFILE=$c/ovn-northd.pid
SDNCNI_OVSDB_PIDFILE=$nd/ovsdb-server.pid
SDNCNI_VSWITCHD_PIDFILE=$nd/ovs-vswitchd.pid
SDNCNI_OVN_CONTROLLER_PIDFILE=$nd/ovn-controller.pid
export SDNCNI_DEV_DIR SDNCNI_NETNS SDNCNI_NETNS_PATH SDNCNI_NODE_DIR SDNCNI_OVS_DB SDNCNI_NB_DB SDNCNI_SB_DB SDNCNI_BRIDGE SDNCNI_SYSTEM_ID SDNCNI_ENCAP_IP SDNCNI_UNDERLAY_NETNS SDNCNI_KERNEL_UNDERLAY_IP
EOF
}

# status DIR: one line per daemon; returns non-zero when any is dead or nothing is there.
status() {
	local dir=$1 c nd rc=0 found=0 f name
	c=$(central_dir "$dir")
	check() {
		local pidfile=$1 name=$2 label=$3
		found=1
		if pid_alive "$pidfile" "$name"; then
			printf '%-40s live (pid %s)\n' "$label" "$(<"$pidfile")"
		else
			printf '%-40s dead\n' "$label"
			rc=1
		fi
	}
	if [[ -d $c ]]; then
		check "$c/ovnnb_db.pid" ovsdb-server "central/ovsdb-server (NB)"
		check "$c/ovnsb_db.pid" ovsdb-server "central/ovsdb-server (SB)"
		check "$c/ovn-northd.pid" ovn-northd "central/ovn-northd"
	fi
	for nd in "$dir"/node-*/; do
		[[ -d $nd ]] || continue
		nd=${nd%/}
		for f in ovsdb-server ovs-vswitchd ovn-controller; do
			name=$f
			check "$nd/$f.pid" "$name" "$(basename "$nd")/$f"
		done
		check "$nd/ovs-vswitchd-supervisor.pid" bash "$(basename "$nd")/ovs-vswitchd supervisor"
	done
	if ((found == 0)); then
		echo "nothing running in $dir"
		return 1
	fi
	return $rc
}

# ---------------------------------------------------------------------------- deps

deps() {
	local missing=() p f pidfile
	for p in "${PACKAGES[@]}"; do
		dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
	done
	if ((${#missing[@]} == 0)); then
		log "all packages present"
		return 0
	fi
	[[ $(id -u) == 0 ]] || die "installing ${missing[*]} needs root"
	log "installing ${missing[*]}"
	# Keep postinst scripts from starting the distribution's services; put back whatever
	# policy was there before, also when the install fails.
	local policy=/usr/sbin/policy-rc.d saved=/usr/sbin/policy-rc.d.sdncni-saved rc=0
	[[ -e $policy ]] && cp -p "$policy" "$saved"
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod 755 "$policy"
	DEBIAN_FRONTEND=noninteractive apt-get update || rc=$?
	if ((rc == 0)); then
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" || rc=$?
	fi
	if [[ -e $saved ]]; then mv -f "$saved" "$policy"; else rm -f "$policy"; fi
	((rc == 0)) || die "apt-get failed (exit $rc)"
	# Anything that started anyway uses the distribution's run dirs: stop exactly those.
	for f in /var/run/openvswitch/*.pid /var/run/ovn/*.pid; do
		[[ -e $f ]] || continue
		pidfile=$f
		for p in ovsdb-server ovs-vswitchd ovn-northd ovn-controller ovn-ic; do
			if pid_alive "$pidfile" "$p"; then
				log "stopping distribution $p started by the install ($pidfile)"
				stop_pid "$pidfile" "$p"
			fi
		done
	done
}

# ---------------------------------------------------------------------------- main

usage() {
	sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
	exit 2
}

main() {
	local cmd=${1:-}
	[[ -n $cmd ]] || usage
	shift
	local dir=${SDNCNI_DEV_DIR:-$DEFAULT_DIR} ns=${SDNCNI_NETNS:-$DEFAULT_NETNS} sysid= encap=127.0.0.1 underlay= kernel=
	while (($#)); do
		case $1 in
		--dir) dir=$2; shift 2 ;;
		--netns) ns=$2; shift 2 ;;
		--system-id) sysid=$2; shift 2 ;;
		--encap-ip) encap=$2; shift 2 ;;
		--underlay) underlay=$2; shift 2 ;;
		--kernel-underlay) kernel=$2; shift 2 ;;
		-h | --help) usage ;;
		*) die "unknown argument $1" ;;
		esac
	done
	[[ -n $sysid ]] || sysid=$ns
	[[ $dir == /* ]] || dir=$(pwd)/$dir
	case $cmd in
	deps) deps ;;
	up)
		central_up "$dir"
		node_up "$dir" "$ns" "$sysid" "$encap" "$underlay" "$kernel"
		cp "$(node_dir "$dir" "$ns")/env" "$dir/env"
		log "up; source $dir/env"
		;;
	central-up)
		central_up "$dir"
		log "central up in $dir/central"
		;;
	node-up)
		node_up "$dir" "$ns" "$sysid" "$encap" "$underlay" "$kernel"
		log "node $ns up; source $(node_dir "$dir" "$ns")/env"
		;;
	node-down) node_down "$dir" "$ns" ;;
	supervise-vswitchd) supervise_vswitchd "$dir" "$ns" ;;
	restart-ovsdb) restart_ovsdb "$dir" "$ns" ;;
	status) status "$dir" ;;
	down)
		local nd
		for nd in "$dir"/node-*/; do
			[[ -d $nd ]] || continue
			nd=${nd%/}
			node_down "$dir" "${nd##*/node-}"
		done
		central_down "$dir"
		underlays_down "$dir"
		# Remove only what this script creates, so a mistaken --dir cannot wipe a tree.
		# harness.pid is written by internal/testenv (the test process that owns DIR).
		rm -rf "$(central_dir "$dir")" "$dir/env" "$dir/harness.pid"
		if [[ -d $dir ]] && ! rmdir "$dir" 2>/dev/null; then
			log "left $dir in place: it holds files this script did not create"
		fi
		;;
	*) usage ;;
	esac
}

main "$@"
