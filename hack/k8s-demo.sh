#!/usr/bin/env bash
# k8s-demo.sh — a short tour of sdncni as the CNI of the cluster of hack/k8s-cluster.sh
# (after hack/k8s-install.sh apply): two tenants' VPNs with the same CIDR, a Deployment in
# each created through the API, what each pod can and cannot reach, and a NetworkPolicy
# inside one VPN. Everything it
# shows is a kubectl command a user can run themselves; it leaves the tenants in place
# ('hack/k8s-demo.sh clean' removes them).
#
#   hack/k8s-demo.sh [run|clean]   (SDNK_DIR as for hack/k8s-cluster.sh)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CLUSTER=$REPO/hack/k8s-cluster.sh
KUBECONFIG=$("$CLUSTER" kubeconfig)
export KUBECONFIG
BIN=$("$REPO/hack/k8s-binaries.sh" cluster | tail -n1)
AGNHOST=$(tar -xOf "$REPO/_output/images/agnhost.tar" index.json | jq -r '.manifests[0].annotations["io.containerd.image.name"]')
TENANTS=(tenant-a tenant-b)

kc() { "$BIN/kubectl" "$@"; }
say() { printf '\n\033[1m%s\033[0m\n' "$*"; }
show() { printf '$ kubectl %s\n' "$*"; kc "$@"; }

tenant() {
	local ns=$1 vpn=$2
	kc apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Namespace
metadata: {name: $ns}
---
apiVersion: sdncni.io/v1alpha1
kind: VirtualPrivateNetwork
metadata: {name: $vpn}
spec: {cidr: 10.50.0.0/16, namespaces: [$ns]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: $ns}
spec:
  replicas: 4
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: web}}}
      containers:
      - name: web
        image: $AGNHOST
        args: [netexec, --http-port=8080]
        readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 2}
        livenessProbe: {tcpSocket: {port: 8080}, periodSeconds: 5}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: $ns}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
EOF
}

# pod_on NS NODE: a pod of NS's Deployment on NODE.
pod_on() { kc -n "$1" get pods -l app=web --field-selector "spec.nodeName=$2" -o jsonpath='{.items[0].metadata.name}'; }
ip_of() { kc -n "$1" get pod "$2" -o jsonpath='{.status.podIP}'; }

# try NS POD TARGET: TCP from POD to TARGET with agnhost, printing what happened.
try() {
	local out
	if out=$(kc -n "$1" exec "$2" -- /agnhost connect --timeout=3s "$3" 2>&1); then
		echo "  $1/$2 → $3: connected"
	else
		echo "  $1/$2 → $3: ${out%%$'\n'*}" | sed 's/command terminated.*//'
	fi
}

# fast_counter NODE: packets the node's eBPF fast path redirected pod to pod.
fast_counter() { dp_counter "$1" redirect_fast; }

# dp_counter NODE REASON: that node's datapath counter of REASON.
dp_counter() {
	local ip
	ip=$(kc get node "$1" -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}')
	"$CLUSTER" exec "$1" -- curl -s "http://$ip:9465/metrics" |
		awk -v r="$2" '$1 == "sdncni_datapath_packets_total{reason=\"" r "\"}" {print $2}'
}

run() {
	local nodes n1 n2 a1 a1b a2 b1 b2 before after
	say "1. The nodes: kubelet + containerd in namespaces, Ready because CNI STATUS answers"
	show get nodes -o wide
	show -n sdncni-system get pods -o wide
	say "2. Two tenants: a VirtualPrivateNetwork each, both 10.50.0.0/16, a Deployment each"
	for i in "${!TENANTS[@]}"; do tenant "${TENANTS[$i]}" "vpn-${TENANTS[$i]#tenant-}"; done
	for ns in "${TENANTS[@]}"; do kc -n "$ns" rollout status deploy/web --timeout=180s >/dev/null; done
	show get virtualprivatenetworks
	show get pods -n tenant-a -o wide
	show get pods -n tenant-b -o wide
	read -r n1 n2 < <(kc get nodes -o jsonpath='{.items[0].metadata.name} {.items[1].metadata.name}{"\n"}')
	a1=$(pod_on tenant-a "$n1")
	a1b=$(kc -n tenant-a get pods -l app=web --field-selector "spec.nodeName=$n1" -o jsonpath='{.items[1].metadata.name}')
	a2=$(pod_on tenant-a "$n2")
	b1=$(pod_on tenant-b "$n1")
	b2=$(pod_on tenant-b "$n2")
	say "3. Inside a VPN: same node (eBPF fast path) and across nodes (the kernel's VXLAN; Services: Geneve)"
	before=$(fast_counter "$n1")
	kc -n tenant-a exec "$a1" -- ping -q -c 20 -i 0.05 "$(ip_of tenant-a "$a1b")" | sed -n 's/^/  /; /packets/p'
	after=$(fast_counter "$n1")
	echo "  ping $a1 → $a1b (both on $n1): the node's eBPF fast path redirected ${before:-0} → ${after:-0} packets"
	before=$(dp_counter "$n1" xnode_tx)
	kc -n tenant-a exec "$a1" -- ping -q -c 20 -i 0.05 "$(ip_of tenant-a "$a2")" | sed -n 's/^/  /; /packets/p'
	after=$(dp_counter "$n1" xnode_tx)
	echo "  ping $a1 ($n1) → $a2 ($n2): the cross-node fast path sent ${before:-0} → ${after:-0} packets in VXLAN"
	echo "  (TCP to port 8080 goes through OVS: it is a Service's target port, whose flows OVN's conntrack must see)"
	try tenant-a "$a1" "$(ip_of tenant-a "$a2"):8080"
	try tenant-a "$a1" "web.tenant-a:80"
	say "4. Across VPNs: nothing of the other tenant answers; the same address means the own VPN's pod"
	for b in "$b1" "$b2"; do
		ip=$(ip_of tenant-b "$b")
		who=$(kc -n tenant-a exec "$a1" -- curl -s -m 3 "http://$ip:8080/hostname" || true)
		if [[ -z $who ]]; then who="nobody (timeout)"
		elif [[ $who == "$b" ]]; then who="$who  <-- tenant-b's pod: VPNs CROSSED"
		else who="tenant-a's own pod $who (same address in vpn-a)"; fi
		echo "  tenant-a/$a1 → $ip (tenant-b/$b's address): answered by $who"
	done
	try tenant-b "$b1" "web.tenant-a.svc.cluster.local:80"
	say "5. The cluster DNS answers in every VPN"
	for p in "tenant-a $a1" "tenant-b $b2"; do
		set -- $p
		printf '  %s/%s: kubernetes.default → %s\n' "$1" "$2" "$(kc -n "$1" exec "$2" -- dig +short kubernetes.default.svc.cluster.local)"
	done
	say "6. NetworkPolicy inside a VPN: tenant-a lets only pods labelled access=granted reach web:8080"
	kc apply -f - >/dev/null <<EOF
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-granted, namespace: tenant-a}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {access: granted}}}]
    ports: [{protocol: TCP, port: 8080}]
EOF
	show -n tenant-a get networkpolicy web-from-granted
	sleep 2 # the cluster role writes the VPN's OVN ACLs, each node its fast-path verdicts
	echo "  without the label, from a pod on the same node and from one on the other node (OVN's ACL drops both):"
	try tenant-a "$a1" "$(ip_of tenant-a "$a1b"):8080"
	try tenant-a "$a1" "$(ip_of tenant-a "$a2"):8080"
	kc -n tenant-a label pod "$a1" access=granted >/dev/null
	sleep 2
	echo "  with access=granted on $a1, both connect:"
	try tenant-a "$a1" "$(ip_of tenant-a "$a1b"):8080"
	try tenant-a "$a1" "$(ip_of tenant-a "$a2"):8080"
	echo "  tenant-b is untouched by tenant-a's policy:"
	try tenant-b "$b1" "$(ip_of tenant-b "$b2"):8080"
	kc -n tenant-a delete networkpolicy web-from-granted >/dev/null
	kc -n tenant-a label pod "$a1" access- >/dev/null
	say "Try it yourself:"
	echo "  export KUBECONFIG=$KUBECONFIG"
	echo "  kubectl -n tenant-a exec deploy/web -- /agnhost connect --timeout=3s <pod IP>:8080"
	echo "  make cluster-down   # removes everything"
}

clean() {
	local ns
	for ns in "${TENANTS[@]}"; do kc delete namespace "$ns" --ignore-not-found --wait=true >/dev/null; done
	for ns in "${TENANTS[@]}"; do kc delete virtualprivatenetwork "vpn-${ns#tenant-}" --ignore-not-found --wait=true >/dev/null; done
}

case ${1:-run} in
run) run ;;
clean) clean ;;
*) echo "usage: $0 [run|clean]" >&2; exit 2 ;;
esac
