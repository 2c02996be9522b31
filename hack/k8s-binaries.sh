#!/usr/bin/env bash
# k8s-binaries.sh — Kubernetes binaries built from source through the Go module proxy with
# the ordinary `go` command (no download site, no Docker), cached outside the repository
# and keyed by version; when they are all there this does nothing. The last line on
# stdout is the directory, so:
#
#   export KUBEBUILDER_ASSETS=$(hack/k8s-binaries.sh)   kube-apiserver, etcd, kubectl (envtest, demo)
#   BIN=$(hack/k8s-binaries.sh cluster)                 also kubelet, kube-controller-manager,
#                                                       kube-scheduler, containerd,
#                                                       containerd-shim-runc-v2, ctr, crictl
#                                                       (hack/k8s-cluster.sh; runc is Debian's)
#
# Cold build ≈ 10–15 min on 2 cores (kube-apiserver dominates, ≈ 2.4 GiB peak RSS); warm Go
# caches ≈ 30 s; cached binaries ≈ 1 s. `cluster` on top of a built default set ≈ 13 min
# cold on 2 busy cores (kubelet 7, controller-manager 3, containerd alone ≈ 13 under that
# load, crictl 1); both sets with warm Go caches ≈ 90 s. Progress goes to stderr. Only one
# build runs at a time (flock on the cache directory); a second caller waits and then
# reuses the result. The default set and the cluster set have separate stamps (VERSIONS,
# CLUSTER_VERSIONS), so adding the cluster set never invalidates a cached default set.
#
# Why a wrapper module: k8s.io/kubernetes replaces its k8s.io/* staging modules with
# ./staging/src/... paths, and `go install …@version` refuses modules with replaces. A
# throw-away module that requires k8s.io/kubernetes and re-declares each staging module it
# requires as `replace k8s.io/X => k8s.io/X v0.<minor>.<patch>` (the published copy of the
# same tree) builds cleanly. See ../docs/deploy.md. containerd and cri-tools are built the
# same way (a module that only requires them), so their own go.sum pins apply.
#
# Environment: K8S_VERSION (v1.37.2), ETCD_VERSION (v3.6.16), CONTAINERD_VERSION (v2.4.2),
# CRICTL_VERSION (v1.37.0), SDNCNI_K8S_CACHE (cache root, default
# ${XDG_CACHE_HOME:-$HOME/.cache}/sdncni/k8s), NICE (10).
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
CONTAINERD_VERSION=${CONTAINERD_VERSION:-v2.4.2}
CRICTL_VERSION=${CRICTL_VERSION:-v1.37.0}
NICE=${NICE:-10}
ROOT=${SDNCNI_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sdncni/k8s}
DIR=$ROOT/$K8S_VERSION
BINARIES=(kube-apiserver etcd kubectl)
STAMP="kubernetes=$K8S_VERSION etcd=$ETCD_VERSION"
CLUSTER_K8S=(kubelet kube-controller-manager kube-scheduler)
CLUSTER_BINARIES=("${CLUSTER_K8S[@]}" containerd containerd-shim-runc-v2 ctr crictl)
CLUSTER_STAMP="kubernetes=$K8S_VERSION containerd=$CONTAINERD_VERSION crictl=$CRICTL_VERSION"

log() { printf 'k8s-binaries: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

case ${1:-} in
"") WANT_CLUSTER=0 ;;
cluster) WANT_CLUSTER=1 ;;
*) die "usage: $0 [cluster]" ;;
esac

# have STAMPFILE STAMP BINARY...: the stamp matches and every binary is there.
have() {
	local file=$DIR/$1 stamp=$2 b
	shift 2
	[[ -f $file && $(<"$file") == "$stamp" ]] || return 1
	for b in "$@"; do [[ -x $DIR/$b ]] || return 1; done
}
default_complete() { have VERSIONS "$STAMP" "${BINARIES[@]}"; }
cluster_complete() { ((WANT_CLUSTER == 0)) || have CLUSTER_VERSIONS "$CLUSTER_STAMP" "${CLUSTER_BINARIES[@]}"; }
complete() { default_complete && cluster_complete; }

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

# --- k8s.io/kubernetes commands ---------------------------------------------------------
# build_kubernetes CMD...: each k8s.io/kubernetes/cmd/CMD into $WORK/out, version-stamped.
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
	local pkgs=() b
	for b in "$@"; do pkgs+=("k8s.io/kubernetes/cmd/$b@$K8S_VERSION"); done
	go get "${pkgs[@]}" >&2

	local date ld
	date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
	ld="-s -w"
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ld+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$K8S_MINOR"
		ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
	done
	local t
	for b in "$@"; do
		t=$SECONDS
		log "building $b $K8S_VERSION"
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

# --- containerd, its runc shim and ctr --------------------------------------------------
# CGO_ENABLED=0: the btrfs snapshotter needs cgo (and is off without it anyway); devmapper
# and zfs are not wanted. overlayfs and native remain.
build_containerd() {
	local mod=$WORK/containerd t=$SECONDS m=github.com/containerd/containerd/v2 b ld
	mkdir -p "$mod"
	cd "$mod"
	go mod init sdncni.local/k8s-binaries/containerd >/dev/null 2>&1
	log "building containerd $CONTAINERD_VERSION"
	go get "$m@$CONTAINERD_VERSION" >&2
	ld="-s -w -X $m/version.Version=$CONTAINERD_VERSION -X $m/version.Package=$m"
	for b in containerd containerd-shim-runc-v2 ctr; do
		gobuild -tags "no_btrfs no_devmapper no_zfs" -ldflags "$ld" -o "$WORK/out/$b" "$m/cmd/$b"
	done
	log "built containerd, containerd-shim-runc-v2, ctr in $((SECONDS - t)) s"
}

# --- crictl -----------------------------------------------------------------------------
build_crictl() {
	local mod=$WORK/cri-tools t=$SECONDS m=sigs.k8s.io/cri-tools
	mkdir -p "$mod"
	cd "$mod"
	go mod init sdncni.local/k8s-binaries/cri-tools >/dev/null 2>&1
	log "building crictl $CRICTL_VERSION"
	go get "$m/cmd/crictl@$CRICTL_VERSION" >&2
	gobuild -ldflags "-s -w -X $m/pkg/version.Version=$CRICTL_VERSION" -o "$WORK/out/crictl" "$m/cmd/crictl"
	log "built crictl in $((SECONDS - t)) s"
}

# install_bins BINARY...: check each runs, then move it into $DIR atomically.
install_bins() {
	local b
	for b in "$@"; do
		"$WORK/out/$b" --version >/dev/null 2>&1 || "$WORK/out/$b" version --client >/dev/null 2>&1 ||
			"$WORK/out/$b" -v >/dev/null 2>&1 || die "$b does not run"
		mv -f "$WORK/out/$b" "$DIR/$b.tmp" && mv -f "$DIR/$b.tmp" "$DIR/$b"
	done
}

mkdir -p "$WORK/out"
k8s=()
if ! default_complete; then
	build_etcd
	k8s+=(kube-apiserver kubectl)
fi
cluster_complete || k8s+=("${CLUSTER_K8S[@]}")
((${#k8s[@]} == 0)) || build_kubernetes "${k8s[@]}"
if ! default_complete; then
	install_bins "${BINARIES[@]}"
	echo "$STAMP" >"$DIR/VERSIONS"
fi
if ! cluster_complete; then
	build_containerd
	build_crictl
	install_bins "${CLUSTER_BINARIES[@]}"
	echo "$CLUSTER_STAMP" >"$DIR/CLUSTER_VERSIONS"
fi
log "all built in $((SECONDS - start)) s into $DIR"
echo "$DIR"
