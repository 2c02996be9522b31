#!/usr/bin/env bash
# k8s-restart-gap.sh — what a restart of each sdncni-node container costs established
# pod traffic, on the cluster of hack/k8s-cluster.sh with sdncni installed: ping at 100/s
# from a pod on the first node to a pod on the same node (eBPF fast path) and to one on
# the second node (OVS, Geneve) while one container of the first node's sdncni-node pod
# is restarted (SIGTERM to its PID 1; the kubelet starts it again). Prints, per container,
# the pings lost on each path and the gap they amount to (lost × 10 ms).
#
#   hack/k8s-restart-gap.sh   (SDNK_DIR as for hack/k8s-cluster.sh)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KUBECONFIG=$("$REPO/hack/k8s-cluster.sh" kubeconfig)
export KUBECONFIG
BIN=$("$REPO/hack/k8s-binaries.sh" cluster | tail -n1)
AGNHOST=$(tar -xOf "$REPO/_output/images/agnhost.tar" index.json | jq -r '.manifests[0].annotations["io.containerd.image.name"]')
NS=restart-gap
COUNT=${COUNT:-1500} # 15 s at 100/s; the restart happens 2 s in

kc() { "$BIN/kubectl" "$@"; }

read -r N1 N2 < <(kc get nodes -o jsonpath='{.items[0].metadata.name} {.items[1].metadata.name}{"\n"}')
kc create namespace "$NS" --dry-run=client -o yaml | kc apply -f - >/dev/null
trap 'kc delete namespace "$NS" --wait=false >/dev/null 2>&1 || true' EXIT
for p in a:"$N1" b:"$N1" c:"$N2"; do
	kc -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: ${p%%:*}}
spec:
  nodeName: ${p#*:}
  terminationGracePeriodSeconds: 0
  containers: [{name: c, image: $AGNHOST, args: [pause]}]
EOF
done
kc -n "$NS" wait --for=condition=Ready pod/a pod/b pod/c --timeout=120s >/dev/null
ipb=$(kc -n "$NS" get pod b -o jsonpath='{.status.podIP}')
ipc=$(kc -n "$NS" get pod c -o jsonpath='{.status.podIP}')
agent=$(kc -n sdncni-system get pods -l app.kubernetes.io/name=sdncni-node --field-selector "spec.nodeName=$N1" -o jsonpath='{.items[0].metadata.name}')

# lost OUT: pings sent minus received, from ping's summary line.
lost() { awk '/packets transmitted/ {print $1 - $4}' <<<"$1"; }

printf '%-18s %22s %22s\n' "restarted" "same node (fast path)" "cross node (Geneve)"
for c in none openvswitch ovn-controller sdncni-controller; do
	same=$(mktemp) cross=$(mktemp)
	kc -n "$NS" exec a -- ping -q -i 0.01 -c "$COUNT" -W 1 "$ipb" >"$same" 2>&1 &
	p1=$!
	kc -n "$NS" exec a -- ping -q -i 0.01 -c "$COUNT" -W 1 "$ipc" >"$cross" 2>&1 &
	p2=$!
	sleep 2
	if [[ $c != none ]]; then
		kc -n sdncni-system exec "$agent" -c "$c" -- /bin/sh -c 'kill 1' >/dev/null 2>&1 || true
	fi
	wait "$p1" || true
	wait "$p2" || true
	ls=$(lost "$(cat "$same")") lc=$(lost "$(cat "$cross")")
	printf '%-18s %12s (%5s ms) %12s (%5s ms)\n' "$c" "${ls:-?}" "$((${ls:-0} * 10))" "${lc:-?}" "$((${lc:-0} * 10))"
	rm -f "$same" "$cross"
	kc -n sdncni-system wait --for=condition=Ready "pod/$agent" --timeout=120s >/dev/null
	sleep 5
done
