# sdncni — build, test and run the local system. Every target that needs root says so.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/sdncni/sdncni/internal/version.Version=$(VERSION)
BIN := bin
# Integration tests start OVS/OVN daemons and network namespaces; one package at a time
# keeps two suites from fighting over two cores.
TEST_FLAGS ?= -count=1 -p 1 -timeout 40m

.PHONY: all build test test-unit generate verify-generate lint deps dev-env dev-env-down demo bench-cni bench-vpn bench-policy bench-policy-compile netperf clean cluster-binaries cluster cluster-down

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/sdncni ./cmd/cni-plugin
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/sdncni-controller ./cmd/controller

# Installs the Debian packages the project needs (root). Idempotent.
deps:
	hack/dev-env.sh deps

# All tiers: unit, privileged (root, real netns/BPF) and integration (real OVS/OVN
# started by the harness). As root in CI nothing is skipped.
# The real-cluster tier (test/k8s) needs the images and the cluster binaries: both are
# cached, so only a machine's first run builds them.
test: deps build images cluster-binaries
	$(GO) test $(TEST_FLAGS) ./...

# Unit tier only: no root, no daemons.
test-unit:
	SDNCNI_TEST_TIER=unit $(GO) test -count=1 ./...

generate:
	$(GO) generate ./...

# Fails when regenerating changes committed generated code.
verify-generate: generate
	@git diff --exit-code -- . || (echo "generated code is stale: run 'make generate' and commit" >&2; exit 1)
	@test -z "$$(git status --porcelain --untracked-files=all -- . | grep -v '^??.*bin/')" || (git status --porcelain; echo "generate produced untracked files" >&2; exit 1)

# golangci-lint is built from the Go module proxy at a pinned version (config: .golangci.yml).
GOLANGCI_LINT ?= $(GO) run github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GOLANGCI_LINT) run --timeout 15m ./...

dev-env:
	hack/dev-env.sh up

dev-env-down:
	hack/dev-env.sh down

# A real two-node Kubernetes cluster in namespaces (root; hack/k8s-cluster.sh): control
# plane, containerd and kubelet per node; sdncni installed on it with kubectl apply -k
# (hack/k8s-install.sh), then a short tour (hack/k8s-demo.sh) that leaves two tenants'
# VPNs running. It prints the KUBECONFIG to use. SDNK_DIR (state dir) applies to all.
cluster-binaries:
	hack/k8s-binaries.sh cluster

cluster: deps build images cluster-binaries
	hack/k8s-cluster.sh up $(CLUSTER_FLAGS) >/dev/null
	hack/k8s-install.sh apply
	hack/k8s-demo.sh
	@echo "export KUBECONFIG=$$(hack/k8s-cluster.sh kubeconfig)"

cluster-down:
	-hack/k8s-install.sh delete
	hack/k8s-cluster.sh down $(CLUSTER_FLAGS)

demo: deps build
	$(GO) run ./test/demo $(DEMO_FLAGS)

# Pod ADD/DEL latency (sequential, 20-way parallel) and RSS with 200 pods; BENCH_FLAGS
# e.g. "--vpns 50 --pods-per-vpn 20" for the VPN figures against a real API server.
bench-cni: build
	$(GO) run ./test/benchcni $(BENCH_FLAGS)

bench-vpn: build
	$(GO) run ./test/benchcni --vpns 50 --pods-per-vpn 20

# NetworkPolicy (issue 13): fast-path TCP throughput with 100 policies selecting the
# pods against none (interleaved), Create → enforced on the fast path and OVS, 100
# policies × 200 pods on a two-node cluster; controller RSS and OVN NB size with 1,000
# policies (root, OVS/OVN, iperf3; ~15 min). BENCH_POLICY_FLAGS e.g. "--pods 100 --bulk 0
# --tput-rounds 0". See
# docs/benchmarks.md, "NetworkPolicy". bench-policy-compile: pkg/policy alone, no root.
bench-policy: build
	$(GO) run ./test/benchpolicy $(BENCH_POLICY_FLAGS)

bench-policy-compile:
	$(GO) test -run '^$$' -bench BenchmarkCompile -benchmem ./test/benchpolicy

netperf: build
	$(GO) run ./test/netperf $(NETPERF_FLAGS)

# The upstream Kubernetes [sig-network] e2e suite (built from source, cached) against the
# cluster in $KUBECONFIG; see docs/e2e-k8s.md. E2E_K8S_FLAGS e.g. "--fast-path off".
.PHONY: e2e-k8s e2e-k8s-netpol
e2e-k8s:
	hack/e2e-k8s.sh run $(E2E_K8S_FLAGS)

e2e-k8s-netpol:
	hack/e2e-k8s.sh run --netpol $(E2E_K8S_FLAGS)

# The ClusterNetworkPolicy conformance suite of sigs.k8s.io/network-policy-api (the
# version in go.mod) against the cluster in $KUBECONFIG; see docs/policy.md. Extra suite
# flags after "--" in CNP_CONFORMANCE_FLAGS.
.PHONY: cnp-conformance
cnp-conformance:
	hack/cnp-conformance.sh run $(CNP_CONFORMANCE_FLAGS)

clean:
	rm -rf $(BIN)

# Container images without Docker (mmdebstrap + go-containerregistry), as archives for
# `ctr -n k8s.io images import` in _output/images/. `image`: sdncni only. Rootfs and
# third-party builds are cached in ~/.cache/sdncni. See docs/deploy.md, "Images".
.PHONY: image images
image:
	$(GO) run ./hack/images --version '$(VERSION)' --only sdncni

images:
	$(GO) run ./hack/images --version '$(VERSION)'

# Pod start-up on the cluster of 'make cluster': 60 pods of a Deployment at once, Ready
# p50/p99/max, fast path on and off. BENCH_K8S_FLAGS e.g. "--pods 120".
.PHONY: bench-k8s
bench-k8s:
	$(GO) run ./test/benchk8s $(BENCH_K8S_FLAGS)
