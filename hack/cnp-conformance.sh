#!/usr/bin/env bash
# cnp-conformance.sh — the ClusterNetworkPolicy conformance suite of
# sigs.k8s.io/network-policy-api (its conformance/ package) against a cluster running
# sdncni. See docs/policy.md ("Conformance").
#
#   hack/cnp-conformance.sh build            build (or find) the suite; prints its path
#   hack/cnp-conformance.sh run [-- flags…]  run it against $KUBECONFIG
#
# The suite is the module version go.mod requires (the one whose CRD deploy/crds holds:
# the suite refuses a CRD of another bundle version), built with the ordinary `go`
# command in a throw-away wrapper module (its test dependencies stay out of our go.sum),
# cached in ${XDG_CACHE_HOME:-$HOME/.cache}/sdncni/cnp-conformance/<version>/.
#
# `run` selects the profile ClusterNetworkPolicy with the features sdncni implements:
# ClusterNetworkPolicy (Core) and ClusterNetworkPolicyNamedPorts (Extended); not
# ClusterNetworkPolicyEgressNodePeers. The Core SCTP tests are expected to fail (no SCTP
# on this datapath). It writes the report and the log under _output/cnp-conformance/
# (CNP_CONFORMANCE_OUT) and exits non-zero if anything failed.
#
# Images: the suite's pods name upstream's e2e-test-images/agnhost image (read from the
# suite's own manifests), which the cluster of hack/k8s-cluster.sh cannot pull (no
# registry); `make images` built agnhost
# as sdncni.local/e2e-test-images/agnhost:<tag>. Unless CNP_CONFORMANCE_RETAG=0, `run`
# tags that image under the suite's name in every node's containerd (hack/k8s-cluster.sh
# exec, SDNK_DIR) — the same image e2e.test gets through test/e2e-k8s/repo-list.yaml.
#
# SCTP: every pod of the suite runs `agnhost porter` SCTP servers, which exit when the
# kernel has no SCTP (this machine: no sctp module), so the suite's pods never get ready
# and its setup fails before any test. CNP_CONFORMANCE_NO_SCTP=1 builds a variant whose
# base manifests lack those SCTP containers (cached apart). A run of it is NOT a
# conformance run: its SCTP probes that expect a connection fail, those that expect
# none pass trivially. Use it to test the rest on such a machine; run the real suite on
# nodes with SCTP.
#
# Environment: KUBECONFIG (required for run), CNP_CONFORMANCE_TIMEOUT (2h),
# CNP_CONFORMANCE_OUT, CNP_CONFORMANCE_RETAG (1), CNP_CONFORMANCE_NO_SCTP (0),
# K8S_VERSION (v1.37.2, for ctr), NICE (10).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MOD=sigs.k8s.io/network-policy-api
NICE=${NICE:-10}
K8S_VERSION=${K8S_VERSION:-v1.37.2}

log() { printf 'cnp-conformance: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

version() { (cd "$REPO" && go list -m -f '{{.Version}}' "$MOD"); }

cmd_build() {
	local v dir bin nosctp=${CNP_CONFORMANCE_NO_SCTP:-0}
	v=$(version)
	dir=${XDG_CACHE_HOME:-$HOME/.cache}/sdncni/cnp-conformance/$v
	bin=$dir/conformance.test
	[[ $nosctp == 0 ]] || bin=$dir/conformance-nosctp.test
	if [[ -x $bin ]]; then
		echo "$bin"
		return
	fi
	mkdir -p "$dir"
	local work
	work=$(mktemp -d)
	trap 'rm -rf "$work"' RETURN
	log "building the conformance suite of $MOD@$v (wrapper module in $work)"
	(
		cd "$work"
		go mod init sdncni.local/cnp-conformance >/dev/null 2>&1
		if [[ $nosctp != 0 ]]; then
			log "variant without the SCTP server containers: not a conformance run"
			local src
			src=$(go mod download -json "$MOD@$v" | jq -r .Dir)
			cp -r "$src" npa
			chmod -R u+w npa
			drop_sctp_containers <npa/conformance/base/manifests.yaml >manifests.yaml
			mv manifests.yaml npa/conformance/base/manifests.yaml
			go mod edit -require="$MOD@$v" -replace="$MOD=./npa"
		fi
		nice -n "$NICE" go get -t "$MOD/conformance@$v" >&2
		nice -n "$NICE" go test -c -o "$bin.tmp" "$MOD/conformance" >&2
	)
	mv "$bin.tmp" "$bin"
	echo "$bin"
}

# drop_sctp_containers filters the suite's base manifests (a Go template of YAML): it
# leaves out each container (a "        - name:" item) that serves SCTP.
drop_sctp_containers() {
	awk '
	function flush() { if (buf != "" && buf !~ /SERVE_SCTP_PORT/) printf "%s", buf; buf = "" }
	/^        - name: / { flush(); buf = $0 "\n"; inb = 1; next }
	inb && /^        [^ -]|^      [^ ]|^    [^ ]|^  [^ ]|^[^ ]/ { flush(); inb = 0 }
	inb { buf = buf $0 "\n"; next }
	{ print }
	END { flush() }'
}

# suite_image prints the agnhost image the suite's manifests name.
suite_image() {
	local dir img
	dir=$(cd "$REPO" && go list -m -f '{{.Dir}}' "$MOD")
	img=$(grep -rhoE '[a-z0-9.-]+(/[a-z0-9._-]+)*/e2e-test-images/agnhost:[0-9.]+' "$dir/conformance" | sort -u)
	[[ $(wc -l <<<"$img") == 1 && -n $img ]] || die "the suite's manifests name no single agnhost image: $img"
	echo "$img"
}

# retag gives every node's containerd the suite's agnhost name for our agnhost image.
retag() {
	local SUITE_IMAGE
	SUITE_IMAGE=$(suite_image)
	local ctr=${SDNCNI_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sdncni/k8s}/$K8S_VERSION/ctr node src
	[[ -x $ctr ]] || die "no ctr at $ctr (hack/k8s-binaries.sh cluster); or set CNP_CONFORMANCE_RETAG=0"
	for node in $(kubectl get nodes -o jsonpath='{.items[*].metadata.name}'); do
		src=$("$REPO/hack/k8s-cluster.sh" exec "$node" -- "$ctr" --address /run/containerd/containerd.sock -n k8s.io images ls -q |
			grep '^sdncni.local/e2e-test-images/agnhost:' | head -1) ||
			die "node $node has no sdncni.local/e2e-test-images/agnhost image (make images, then hack/k8s-cluster.sh up)"
		"$REPO/hack/k8s-cluster.sh" exec "$node" -- "$ctr" --address /run/containerd/containerd.sock -n k8s.io \
			images tag --force "$src" "$SUITE_IMAGE" >/dev/null
		log "$node: $src tagged $SUITE_IMAGE"
	done
}

cmd_run() {
	local extra=()
	if [[ ${1:-} == -- ]]; then
		shift
		extra=("$@")
	elif (($#)); then
		die "run: unknown argument $1"
	fi
	[[ -n ${KUBECONFIG:-} && -f ${KUBECONFIG%%:*} ]] || die "KUBECONFIG must name the cluster's kubeconfig (hack/k8s-cluster.sh writes one)"
	command -v kubectl >/dev/null || die "kubectl is not on PATH"
	export KUBECONFIG
	KUBECONFIG=$(realpath "${KUBECONFIG%%:*}")
	kubectl get crd clusternetworkpolicies.policy.networking.k8s.io >/dev/null ||
		die "the ClusterNetworkPolicy CRD is not installed (kubectl apply -k deploy)"
	local bin out rc=0
	bin=$(cmd_build)
	out=$(realpath -m "${CNP_CONFORMANCE_OUT:-$REPO/_output/cnp-conformance}")
	rm -rf "$out"
	mkdir -p "$out"
	if [[ ${CNP_CONFORMANCE_RETAG:-1} != 0 ]]; then retag; fi
	log "running $bin against $KUBECONFIG; log: $out/conformance.log"
	(cd "$out" && "$bin" -test.v -test.timeout "${CNP_CONFORMANCE_TIMEOUT:-2h}" -test.run '^TestConformanceProfiles$' \
		-conformance-profiles=ClusterNetworkPolicy \
		-supported-features=ClusterNetworkPolicy,ClusterNetworkPolicyNamedPorts \
		-organization=sdncni -project=sdncni -url=https://github.com/sdncni/sdncni \
		-additional-info=https://github.com/sdncni/sdncni/blob/main/hack/cnp-conformance.sh \
		-version="$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo dev)" -contact=sdncni \
		-report-output="$out/report.yaml" "${extra[@]}") 2>&1 | tee "$out/conformance.log" || rc=$?
	printf '%s passed, %s failed, %s skipped\n' \
		"$(grep -c -- '^    --- PASS' "$out/conformance.log" || true)" \
		"$(grep -c -- '^    --- FAIL' "$out/conformance.log" || true)" \
		"$(grep -c -- '^    --- SKIP' "$out/conformance.log" || true)"
	return "$rc"
}

case ${1:-} in
build) cmd_build ;;
run)
	shift
	cmd_run "$@"
	;;
*) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
