#!/usr/bin/env bash
# k8s-binaries.sh — kube-apiserver, etcd and kubectl for envtest and the demo, built from
# source through the Go module proxy with the ordinary `go` command (no download site, no
# Docker). The binaries are cached outside the repository, keyed by version; when they are
# all there this does nothing. The last line on stdout is the directory, so:
#
#   export KUBEBUILDER_ASSETS=$(hack/k8s-binaries.sh)
#
# Cold build ≈ 10–15 min on 2 cores (kube-apiserver dominates, ≈ 2.4 GiB peak RSS); warm Go
# caches ≈ 30 s; cached binaries ≈ 1 s. Progress goes to stderr. Only one build runs at a
# time (flock on the cache directory); a second caller waits and then reuses the result.
#
# Why a wrapper module: k8s.io/kubernetes replaces its k8s.io/* staging modules with
# ./staging/src/... paths, and `go install …@version` refuses modules with replaces. A
# throw-away module that requires k8s.io/kubernetes and re-declares each staging module it
# requires as `replace k8s.io/X => k8s.io/X v0.<minor>.<patch>` (the published copy of the
# same tree) builds cleanly. See ../docs/deploy.md.
#
# Environment: K8S_VERSION (v1.37.2), ETCD_VERSION (v3.6.16), SDNCNI_K8S_CACHE (cache root,
# default ${XDG_CACHE_HOME:-$HOME/.cache}/sdncni/k8s), NICE (10).
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
NICE=${NICE:-10}
ROOT=${SDNCNI_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sdncni/k8s}
DIR=$ROOT/$K8S_VERSION
BINARIES=(kube-apiserver etcd kubectl)
STAMP="kubernetes=$K8S_VERSION etcd=$ETCD_VERSION"

log() { printf 'k8s-binaries: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

complete() {
	[[ -f $DIR/VERSIONS && $(<"$DIR/VERSIONS") == "$STAMP" ]] || return 1
	local b
	for b in "${BINARIES[@]}"; do [[ -x $DIR/$b ]] || return 1; done
}

if complete; then
	echo "$DIR"
	exit 0
fi

[[ $K8S_VERSION =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] || die "K8S_VERSION $K8S_VERSION is not v1.MINOR.PATCH"
K8S_MINOR=${BASH_REMATCH[1]}
STAGING_VERSION=v0.${BASH_REMATCH[1]}.${BASH_REMATCH[2]}
command -v go >/dev/null || die "go is not on PATH"

mkdir -p "$DIR"
exec 9>"$DIR/.lock"
if ! flock -n 9; then
	log "another build holds $DIR/.lock; waiting for it"
	flock 9
fi
if complete; then # the other build finished them
	echo "$DIR"
	exit 0
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sdncni-k8s-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOWORK=off
gobuild() { nice -n "$NICE" go build -trimpath "$@"; }
start=$SECONDS

# --- kube-apiserver and kubectl ---------------------------------------------------------
build_kubernetes() {
	local mod=$WORK/kubernetes gomod
	mkdir -p "$mod"
	cd "$mod"
	go mod init sdncni.local/k8s-binaries/kubernetes >/dev/null 2>&1
	log "downloading k8s.io/kubernetes@$K8S_VERSION"
	gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | jq -r .GoMod)
	[[ -f $gomod ]] || die "no go.mod for k8s.io/kubernetes@$K8S_VERSION"
	# Staging modules: replaced with ./staging/... AND required (sample-cli-plugin and
	# sample-controller are replaced but neither required nor published).
	local staging
	staging=$(go mod edit -json "$gomod" | jq -r '
		[.Require[].Path] as $req
		| .Replace[] | select(.New.Path | startswith("./staging/"))
		| .Old.Path | select(. as $p | $req | any(. == $p))')
	[[ -n $staging ]] || die "found no staging modules in $gomod"
	local args=(-require="k8s.io/kubernetes@$K8S_VERSION") m
	for m in $staging; do args+=(-replace="$m=$m@$STAGING_VERSION"); done
	go mod edit "${args[@]}"
	log "$(wc -w <<<"$staging") staging modules re-declared at $STAGING_VERSION; resolving"
	go get "k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION" "k8s.io/kubernetes/cmd/kubectl@$K8S_VERSION" >&2

	local date ld
	date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
	ld="-s -w"
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ld+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$K8S_MINOR"
		ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
	done
	local b t
	for b in kube-apiserver kubectl; do
		t=$SECONDS
		log "building $b $K8S_VERSION (kube-apiserver: ~10 min cold on 2 cores)"
		gobuild -ldflags "$ld" -o "$WORK/out/$b" "k8s.io/kubernetes/cmd/$b"
		log "built $b in $((SECONDS - t)) s"
	done
}

# --- etcd -------------------------------------------------------------------------------
build_etcd() {
	local mod=$WORK/etcd t=$SECONDS
	mkdir -p "$mod"
	cd "$mod"
	go mod init sdncni.local/k8s-binaries/etcd >/dev/null 2>&1
	log "building etcd $ETCD_VERSION"
	go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2
	gobuild -ldflags "-s -w" -o "$WORK/out/etcd" go.etcd.io/etcd/server/v3
	log "built etcd in $((SECONDS - t)) s"
}

mkdir -p "$WORK/out"
build_etcd
build_kubernetes
for b in "${BINARIES[@]}"; do
	"$WORK/out/$b" --version >/dev/null 2>&1 || "$WORK/out/$b" version --client >/dev/null 2>&1 ||
		die "$b does not run"
	mv -f "$WORK/out/$b" "$DIR/$b.tmp" && mv -f "$DIR/$b.tmp" "$DIR/$b"
done
echo "$STAMP" >"$DIR/VERSIONS"
log "all built in $((SECONDS - start)) s into $DIR"
echo "$DIR"
