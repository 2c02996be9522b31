#!/usr/bin/env bash
# e2e-k8s.sh — the upstream Kubernetes [sig-network] e2e suite against a cluster running
# sdncni. See ../docs/e2e-k8s.md.
#
#   hack/e2e-k8s.sh build                      build (or find) e2e.test; prints its path
#   hack/e2e-k8s.sh list [--netpol]            the selected specs, by a Ginkgo dry run (no cluster)
#   hack/e2e-k8s.sh skips                      the skips and their reasons, as a Markdown table
#   hack/e2e-k8s.sh run  [--netpol] [--fast-path on|off] [-- e2e.test flags…]
#                                              run them against $KUBECONFIG
#
# e2e.test is built from k8s.io/kubernetes through the Go module proxy with the ordinary
# `go` command, in a throw-away wrapper module (as hack/k8s-binaries.sh does for
# kube-apiserver: it re-declares the staging modules kubernetes replaces with ./staging
# paths). The package is test/e2e-k8s/_suite: upstream's e2e_test.go slimmed to the
# sig-network specs. Cached by version (and a hash of _suite) in
# ${XDG_CACHE_HOME:-$HOME/.cache}/sdncni/k8s/<version>/e2e.test; when it is there `build`
# takes a second.
#
# `run` writes the JUnit report and the full log under _output/e2e-k8s/ (E2E_K8S_OUT),
# prints one line "N passed, N failed, N skipped" and exits non-zero if anything failed.
# `--fast-path off` sets spec.fastPath=false on the `default` VirtualPrivateNetwork (the
# VPN of every namespace the suite creates) for the run and restores it afterwards.
#
# Environment: K8S_VERSION (v1.37.2), SDNCNI_K8S_CACHE (cache root), NICE (10),
# KUBECONFIG (required for run), KUBE_TEST_REPO_LIST (default test/e2e-k8s/repo-list.yaml),
# E2E_K8S_TIMEOUT (ginkgo.timeout, 3h), E2E_K8S_PARALLEL (1: Ginkgo processes; > 1 runs
# e2e.test under the ginkgo CLI, built once at the version kubernetes pins and cached next
# to e2e.test; [Serial] specs still run alone), E2E_K8S_OUT (_output/e2e-k8s),
# E2E_K8S_NUM_NODES (2).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
K8S_VERSION=${K8S_VERSION:-v1.37.2}
NICE=${NICE:-10}
ROOT=${SDNCNI_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sdncni/k8s}
DIR=$ROOT/$K8S_VERSION
SUITE=$REPO/test/e2e-k8s/_suite
E2E=$DIR/e2e.test

log() { printf 'e2e-k8s: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# The binary is current when it was built from this version and these suite sources.
stamp() { echo "kubernetes=$K8S_VERSION suite=$(cat "$SUITE"/*.go | sha256sum | cut -c1-16)"; }
built() { [[ -x $E2E && -f $E2E.stamp && $(<"$E2E.stamp") == "$(stamp)" ]]; }

cmd_build() {
	if built; then
		echo "$E2E"
		return
	fi
	[[ $K8S_VERSION =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] || die "K8S_VERSION $K8S_VERSION is not v1.MINOR.PATCH"
	local minor=${BASH_REMATCH[1]} staging_version=v0.${BASH_REMATCH[1]}.${BASH_REMATCH[2]}
	command -v go >/dev/null || die "go is not on PATH"
	command -v jq >/dev/null || die "jq is not on PATH"
	mkdir -p "$DIR"
	# Our own lock: hack/k8s-binaries.sh holds $DIR/.lock for its (long) builds.
	exec 9>"$DIR/.e2e.lock"
	if ! flock -n 9; then
		log "another build holds $DIR/.e2e.lock; waiting for it"
		flock 9
	fi
	if built; then
		echo "$E2E"
		return
	fi

	local work start=$SECONDS
	work=$(mktemp -d "${TMPDIR:-/tmp}/sdncni-e2e-k8s.XXXXXX")
	# shellcheck disable=SC2064 # expand now: $work is local
	trap "rm -rf '$work'" EXIT
	export CGO_ENABLED=0 GOFLAGS=-mod=mod GOWORK=off
	cd "$work"
	go mod init sdncni.local/e2e-k8s >/dev/null 2>&1
	cp "$SUITE"/*.go .

	log "downloading k8s.io/kubernetes@$K8S_VERSION"
	local gomod staging m
	gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | jq -r .GoMod)
	[[ -f $gomod ]] || die "no go.mod for k8s.io/kubernetes@$K8S_VERSION"
	# Staging modules: replaced with ./staging/... and required (as in k8s-binaries.sh).
	staging=$(go mod edit -json "$gomod" | jq -r '
		[.Require[].Path] as $req
		| .Replace[] | select(.New.Path | startswith("./staging/"))
		| .Old.Path | select(. as $p | $req | any(. == $p))')
	[[ -n $staging ]] || die "found no staging modules in $gomod"
	local args=(-require="k8s.io/kubernetes@$K8S_VERSION")
	for m in $staging; do args+=(-replace="$m=$m@$staging_version"); done
	go mod edit "${args[@]}"
	log "$(wc -w <<<"$staging") staging modules re-declared at $staging_version; resolving"
	# The test dependencies (ginkgo, gomega, …) at the versions kubernetes' go.mod pins.
	go mod tidy >&2 2>"$work/tidy.log" || { cat "$work/tidy.log" >&2; die "go mod tidy failed"; }

	local ld="-s -w" pkg date
	date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ld+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
		ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
	done
	log "compiling e2e.test $K8S_VERSION (≈ 10 min cold on 2 cores, seconds with a warm Go cache)"
	local t=$SECONDS
	nice -n "$NICE" go test -c -trimpath -ldflags "$ld" -o "$work/e2e.test" .
	log "compiled in $((SECONDS - t)) s"
	"$work/e2e.test" --version >/dev/null || die "e2e.test does not run"
	mv -f "$work/e2e.test" "$E2E.tmp" && mv -f "$E2E.tmp" "$E2E"
	stamp >"$E2E.stamp"
	log "built in $((SECONDS - start)) s: $E2E"
	echo "$E2E"
}

# ginkgo_cli builds (or finds) the ginkgo CLI at the version k8s.io/kubernetes pins, the
# one e2e.test is linked with (the CLI and the library must agree); prints its path.
ginkgo_cli() {
	local gomod version bin
	gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | jq -r .GoMod)
	version=$(go mod edit -json "$gomod" | jq -r '.Require[] | select(.Path == "github.com/onsi/ginkgo/v2") | .Version')
	[[ -n $version ]] || die "k8s.io/kubernetes@$K8S_VERSION pins no github.com/onsi/ginkgo/v2"
	bin=$DIR/ginkgo-$version
	if [[ ! -x $bin ]]; then
		log "building the ginkgo CLI $version"
		GOBIN=$DIR/.ginkgo-build CGO_ENABLED=0 GOFLAGS=-mod=mod GOWORK=off \
			go install "github.com/onsi/ginkgo/v2/ginkgo@$version" >&2
		mv -f "$DIR/.ginkgo-build/ginkgo" "$bin"
		rmdir "$DIR/.ginkgo-build" 2>/dev/null || true
	fi
	echo "$bin"
}

# selection_args fills ARGS with the focus/skip flags of test/e2e-k8s/selection.sh.
selection_args() {
	local netpol=$1 r
	# shellcheck source=../test/e2e-k8s/selection.sh
	source "$REPO/test/e2e-k8s/selection.sh"
	ARGS=()
	if ((netpol)); then
		for r in "${NETPOL_FOCUS[@]}"; do ARGS+=("--ginkgo.focus=$r"); done
		for r in "${NETPOL_SKIP[@]}"; do ARGS+=("--ginkgo.skip=$r"); done
	else
		# E2E_K8S_FOCUS narrows a run to some specs (e.g. to re-run failures); the skips
		# still apply.
		if [[ -n ${E2E_K8S_FOCUS:-} ]]; then
			ARGS+=("--ginkgo.focus=$E2E_K8S_FOCUS")
		else
			for r in "${FOCUS[@]}"; do ARGS+=("--ginkgo.focus=$r"); done
		fi
		for r in "${SKIP[@]}"; do ARGS+=("--ginkgo.skip=$r"); done
	fi
}

# summary prints "N passed, N failed, N skipped" from a JUnit file (skipped: specs that
# were selected but skipped themselves at run time, e.g. for want of a provider; the
# specs the selection leaves out are counted apart) and returns 1 when something failed.
summary() {
	local xml=$1
	[[ -f $xml ]] || { echo "0 passed, 1 failed, 0 skipped (no JUnit report at $xml)"; return 1; }
	python3 - "$xml" <<-'EOF'
		import sys, xml.etree.ElementTree as ET
		passed = failed = skipped = unselected = 0
		for tc in ET.parse(sys.argv[1]).getroot().iter("testcase"):
		    name = tc.get("name", "")
		    bad = tc.find("failure") is not None or tc.find("error") is not None
		    # Ginkgo reports suite nodes ([SynchronizedBeforeSuite], [ReportAfterSuite] …)
		    # as testcases too: count them only when they fail.
		    if name.startswith("[") and name.split("]")[0][1:] in (
		            "BeforeSuite", "AfterSuite", "SynchronizedBeforeSuite",
		            "SynchronizedAfterSuite", "ReportBeforeSuite", "ReportAfterSuite"):
		        failed += bad
		        continue
		    sk = tc.find("skipped")
		    if sk is not None:
		        # Filtered-out specs carry message "skipped"; a run-time Skip adds its reason.
		        if (sk.get("message") or "skipped").strip() in ("skipped", "pending"):
		            unselected += 1
		        else:
		            skipped += 1
		    elif bad:
		        failed += 1
		    else:
		        passed += 1
		print(f"{passed} passed, {failed} failed, {skipped} skipped ({unselected} not selected)")
		sys.exit(1 if failed else 0)
	EOF
}

# e2e_flags: what the framework needs on a bare two-node cluster with no cloud and no ssh.
e2e_flags() {
	local out=$1
	FLAGS=(
		--provider=local                 # no cloud; only the built-in providers are compiled in
		--num-nodes="${E2E_K8S_NUM_NODES:-2}" # the cluster hack/k8s-cluster.sh starts
		--allowed-not-ready-nodes=0      # every node must be Ready
		--node-os-distro=debian
		--disable-log-dump               # log-dump.sh ssh-es into kube-up nodes
		--dump-logs-on-failure=true      # namespace events/pods of a failed spec (API only)
		--report-dir="$out"
		--ginkgo.timeout="${E2E_K8S_TIMEOUT:-3h}"
		--ginkgo.flake-attempts=0
		--ginkgo.v
		--ginkgo.no-color
		--ginkgo.poll-progress-after=2m  # say what a hanging spec waits for
	)
	# Many specs shell out to kubectl (exec, logs); use the one built at the server's version
	# by hack/k8s-binaries.sh when it is there, not the machine's older one.
	if [[ -x $DIR/kubectl ]]; then FLAGS+=(--kubectl-path="$DIR/kubectl"); fi
}

cmd_list() {
	local netpol=0
	while (($#)); do
		case $1 in
		--netpol) netpol=1 ;;
		*) die "list: unknown argument $1" ;;
		esac
		shift
	done
	local e2e out
	e2e=$(cmd_build)
	out=$(mktemp -d "${TMPDIR:-/tmp}/sdncni-e2e-k8s-list.XXXXXX")
	selection_args "$netpol"
	# A dry run walks the spec tree without a cluster: the selected specs come out as
	# "passed", everything else as "skipped".
	"$e2e" --provider=skeleton --ginkgo.dry-run --ginkgo.v --ginkgo.no-color \
		--report-dir="$out" "${ARGS[@]}" >"$out/dry-run.log" 2>&1 || true
	[[ -f $out/junit_01.xml ]] || { cat "$out/dry-run.log" >&2; die "the dry run wrote no report"; }
	python3 - "$out/junit_01.xml" <<-'EOF'
		import sys, xml.etree.ElementTree as ET
		run, skipped = [], 0
		for tc in ET.parse(sys.argv[1]).getroot().iter("testcase"):
		    name = tc.get("name", "")
		    if name.startswith("[") and "Suite]" in name:
		        continue
		    if tc.find("skipped") is not None:
		        skipped += 1
		    else:
		        run.append(name.removeprefix("[It] "))
		for n in sorted(run):
		    print(n)
		sys.stdout.flush()
		print(f"{len(run)} selected, {skipped} not selected", file=sys.stderr)
	EOF
	rm -rf "$out"
}

cmd_run() {
	local netpol=0 fastpath="" extra=()
	while (($#)); do
		case $1 in
		--netpol) netpol=1 ;;
		--fast-path)
			shift
			[[ ${1:-} == on || ${1:-} == off ]] || die "--fast-path takes on or off"
			fastpath=$1
			;;
		--fast-path=on | --fast-path=off) fastpath=${1#--fast-path=} ;;
		--)
			shift
			extra=("$@")
			break
			;;
		*) die "run: unknown argument $1" ;;
		esac
		shift
	done
	[[ -n ${KUBECONFIG:-} && -f ${KUBECONFIG%%:*} ]] || die "KUBECONFIG must name the cluster's kubeconfig (hack/k8s-cluster.sh writes one)"
	local repo_list=${KUBE_TEST_REPO_LIST:-$REPO/test/e2e-k8s/repo-list.yaml}
	[[ -f $repo_list ]] || die "no image repo list at $repo_list (KUBE_TEST_REPO_LIST): the test images come from sdncni.local"
	export KUBE_TEST_REPO_LIST=$repo_list
	# e2e.test runs in the output directory: make every path absolute.
	KUBECONFIG=$(realpath "${KUBECONFIG%%:*}") KUBE_TEST_REPO_LIST=$(realpath "$repo_list")

	local e2e out
	e2e=$(cmd_build)
	out=$(realpath -m "${E2E_K8S_OUT:-$REPO/_output/e2e-k8s}/$( ((netpol)) && echo netpol || echo network)")
	rm -rf "$out"
	mkdir -p "$out"

	if [[ -n $fastpath ]]; then set_fast_path "$fastpath"; fi

	selection_args "$netpol"
	e2e_flags "$out"
	local rc=0
	log "running e2e.test ($( ((netpol)) && echo Netpol || echo sig-network selection)) against $KUBECONFIG; log: $out/e2e.log"
	local procs=${E2E_K8S_PARALLEL:-1}
	if ((procs > 1)); then
		# The CLI takes Ginkgo's own flags without their "ginkgo." prefix and hands the
		# rest to every e2e.test process; the framework's JUnit report (ReportAfterSuite)
		# is the aggregate of all processes.
		local cli f gflags=() tflags=()
		cli=$(ginkgo_cli)
		for f in "${FLAGS[@]}" "${ARGS[@]}"; do
			if [[ $f == --ginkgo.* ]]; then gflags+=("--${f#--ginkgo.}"); else tflags+=("$f"); fi
		done
		log "$procs Ginkgo processes"
		(cd "$out" && "$cli" --procs="$procs" "${gflags[@]}" "$e2e" -- --kubeconfig="$KUBECONFIG" "${tflags[@]}" "${extra[@]}") 2>&1 |
			tee "$out/e2e.log" || rc=$?
	else
		(cd "$out" && "$e2e" --kubeconfig="$KUBECONFIG" "${FLAGS[@]}" "${ARGS[@]}" "${extra[@]}") 2>&1 |
			tee "$out/e2e.log" || rc=$?
	fi
	summary "$out/junit_01.xml" || rc=1
	return "$rc"
}

# set_fast_path switches the default VPN's fast path for the run and puts the old value
# back on exit; "on" also fails early when the controllers run with --fast-path=false.
set_fast_path() {
	local want=$1 old value
	command -v kubectl >/dev/null || die "--fast-path needs kubectl"
	old=$(kubectl get virtualprivatenetwork default -o jsonpath='{.spec.fastPath}') ||
		die "no VirtualPrivateNetwork 'default' (is sdncni running?)"
	[[ $want == on ]] && value=true || value=false
	log "default VPN: spec.fastPath ${old:-unset} -> $value for this run"
	kubectl patch virtualprivatenetwork default --type=merge -p "{\"spec\":{\"fastPath\":$value}}" >/dev/null
	# shellcheck disable=SC2064 # expand now
	trap "kubectl patch virtualprivatenetwork default --type=merge -p '{\"spec\":{\"fastPath\":${old:-true}}}' >/dev/null || true" EXIT
	local ds
	ds=$(kubectl get daemonsets --all-namespaces -o yaml)
	if [[ $want == on && $ds == *--fast-path=false* ]]; then
		die "--fast-path on: the sdncni DaemonSet runs with --fast-path=false"
	fi
}

# cmd_skips prints the skips of selection.sh as a Markdown table (for docs/e2e-k8s.md).
cmd_skips() {
	# shellcheck source=../test/e2e-k8s/selection.sh
	source "$REPO/test/e2e-k8s/selection.sh"
	local i
	printf '| skip regex | why |\n|---|---|\n'
	for i in "${!SKIP[@]}"; do printf '| `%s` | %s |\n' "${SKIP[$i]//|/\\|}" "${SKIP_WHY[$i]}"; done
	printf '\n| `--netpol` skip regex | why |\n|---|---|\n'
	for i in "${!NETPOL_SKIP[@]}"; do printf '| `%s` | %s |\n' "${NETPOL_SKIP[$i]//|/\\|}" "${NETPOL_SKIP_WHY[$i]}"; done
}

case ${1:-} in
build) cmd_build ;;
skips) cmd_skips ;;
list) shift && cmd_list "$@" ;;
run) shift && cmd_run "$@" ;;
*)
	sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
	;;
esac
