#!/usr/bin/env bash
# demo.sh — the whole system on one machine: OVS/OVN, the controller, two pods created
# through libcni (cnitool) exactly as a container runtime would, ping and iperf3 between
# them, and each pod's path. Cleans up unless --keep.
#
#   hack/demo.sh [--keep]        (root; 'make demo' builds first)
#   hack/demo.sh down            clean up after --keep
set -euo pipefail
cd "$(dirname "$0")/.."

DIR=/run/sdncni-demo
NODE=sdncni-demo-node
PODS=(sdncni-demo-a sdncni-demo-b)
PIN=/sys/fs/bpf/sdncni-demo
CIDR=10.244.0.0/24
BIN=$PWD/bin
KEEP=0
FAST=${SDNCNI_DEMO_FAST_PATH:-true} # false: everything through OVS/OVN

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
cnitool() {
	CNI_PATH=$BIN NETCONFPATH=$DIR/net.d \
		CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=demo;K8S_POD_NAME=$2" \
		"$BIN/cnitool" "$1" sdncni "/run/netns/$2"
}

down() {
	set +e
	if [[ -x $BIN/cnitool && -S $DIR/cni.sock ]]; then
		for p in "${PODS[@]}"; do [[ -e /run/netns/$p ]] && cnitool del "$p" >/dev/null 2>&1; done
	fi
	for p in "${PODS[@]}"; do ip netns del "$p" 2>/dev/null; done
	if [[ -r $DIR/controller.pid ]]; then
		pid=$(<"$DIR/controller.pid")
		if [[ $(cat /proc/"$pid"/comm 2>/dev/null) == sdncni-control* ]]; then
			kill -TERM "$pid"
			for _ in $(seq 50); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
		fi
	fi
	rm -rf "$PIN"
	hack/dev-env.sh down --dir "$DIR" --netns "$NODE" >/dev/null 2>&1
	set -e
}

case "${1:-}" in
down) down; exit 0 ;;
--keep) KEEP=1 ;;
"") ;;
*) echo "usage: $0 [--keep|down]" >&2; exit 2 ;;
esac
[[ $(id -u) == 0 ]] || { echo "demo: run as root" >&2; exit 1; }
[[ -x $BIN/sdncni && -x $BIN/sdncni-controller ]] || { echo "demo: run 'make build' first (or 'make demo')" >&2; exit 1; }
go build -o "$BIN/cnitool" github.com/containernetworking/cni/cnitool
if [[ $KEEP == 0 ]]; then trap down EXIT; fi

say "Starting OVS + OVN (userspace datapath) in node namespace $NODE"
hack/dev-env.sh up --dir "$DIR" --netns "$NODE" >/dev/null
# shellcheck disable=SC1091
. "$DIR/env"

say "Starting sdncni-controller in $NODE"
nsenter --net="$SDNCNI_NETNS_PATH" "$BIN/sdncni-controller" \
	--socket "$DIR/cni.sock" --ovs-db "$SDNCNI_OVS_DB" --nb-db "$SDNCNI_NB_DB" --bridge "$SDNCNI_BRIDGE" \
	--network demo --cidr "$CIDR" --mtu 1500 --ipam-store "$DIR/ipam.json" --bpf-pin-dir "$PIN" \
	--node-name "$SDNCNI_SYSTEM_ID" --fast-path="$FAST" --metrics-addr 127.0.0.1:9465 >"$DIR/controller.log" 2>&1 &
echo $! >"$DIR/controller.pid"
for _ in $(seq 300); do [[ -S $DIR/cni.sock ]] && break; sleep 0.1; done
[[ -S $DIR/cni.sock ]] || { cat "$DIR/controller.log"; exit 1; }
mkdir -p "$DIR/net.d"
cat >"$DIR/net.d/10-sdncni.conflist" <<JSON
{"cniVersion": "1.1.0", "name": "sdncni",
 "plugins": [{"type": "sdncni", "socket": "$DIR/cni.sock", "logFile": "$DIR/cni.log"}]}
JSON
echo "conflist: $DIR/net.d/10-sdncni.conflist"

say "Creating two pods through libcni (cnitool add)"
declare -A IP
for p in "${PODS[@]}"; do
	ip netns add "$p"
	res=$(cnitool add "$p")
	IP[$p]=$(echo "$res" | sed -n 's/.*"address": *"\([0-9.]*\)\/.*/\1/p' | head -1)
	echo "$p: ${IP[$p]}"
done
A=${PODS[0]} B=${PODS[1]}

say "ping $A -> $B"
nsenter --net=/run/netns/"$A" ping -c 3 -i 0.2 "${IP[$B]}"

say "iperf3 $A -> $B (3 s)"
nsenter --net=/run/netns/"$B" iperf3 -s -1 -D -B "${IP[$B]}" >/dev/null
sleep 0.5
nsenter --net=/run/netns/"$A" iperf3 -c "${IP[$B]}" -t 3 | tail -4

say "Each pod's path"
for p in "${PODS[@]}"; do
	cid=$(printf '%s' "/run/netns/$p" | sha512sum | cut -c1-64) # cnitool's container ID
	lsp=$(ovn-nbctl --db="$SDNCNI_NB_DB" --bare --columns=name find Logical_Switch_Port "external_ids:\"sdncni.io/pod-name\"=$p")
	port=$(ovs-vsctl --db="$SDNCNI_OVS_DB" --bare --columns=name find Interface "external_ids:iface-id=$lsp")
	host=$(ovs-vsctl --db="$SDNCNI_OVS_DB" --bare --columns=name find Interface "external_ids:iface-id=$lsp" | sed 's/^sdno/sdnh/')
	echo "$p eth0 (${IP[$p]}) <-veth-> $host [tc] -> OVS internal port $port == OVN lsp $lsp on switch sdncni-demo"
	ofport=$(ovs-vsctl --db="$SDNCNI_OVS_DB" get Interface "$port" ofport)
	echo "    OVS port $ofport counters now (OpenFlow): $(ovs-ofctl dump-ports "unix:$SDNCNI_NODE_DIR/$SDNCNI_BRIDGE.mgmt" "$ofport" | grep -o 'rx pkts=[0-9]*'), $(ovs-ofctl dump-ports "unix:$SDNCNI_NODE_DIR/$SDNCNI_BRIDGE.mgmt" "$ofport" | grep -o 'tx pkts=[0-9]*') — $([[ $FAST == true ]] && echo 'ARP only: the bulk took the fast path' || echo 'fast path off: everything through OVS')"
done
echo
echo "fast-path counters (controller /metrics, non-zero):"
# shellcheck disable=SC2016
nsenter --net="$SDNCNI_NETNS_PATH" bash -c 'exec 3<>/dev/tcp/127.0.0.1/9465; printf "GET /metrics HTTP/1.0\r\n\r\n" >&3; cat <&3' |
	grep '^sdncni_datapath_packets_total' | grep -v ' 0$' | sed 's/^/  /'
echo
echo "OVN logical topology:"
ovn-nbctl --db="$SDNCNI_NB_DB" show | sed 's/^/  /'


if [[ $KEEP == 1 ]]; then
	say "Left running. Environment: . $DIR/env ; clean up with: hack/demo.sh down"
fi
