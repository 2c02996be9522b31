#!/usr/bin/env bash
# networkpolicy-api-crd.sh DIR — copy the ClusterNetworkPolicy CRD of the
# sigs.k8s.io/network-policy-api version that go.mod requires into DIR (go:generate in
# api/v1alpha1/gen.go runs it with DIR = deploy/crds). The CRD is upstream's, byte for
# byte: we never edit it, and `make verify-generate` fails when it drifts from go.mod.
#
# Channel: experimental. It is the only CRD the Go module ships (config/crd/standard holds
# just a kustomization), and it carries destinationNamedPort, which sdncni implements
# (docs/policy.md). Its other experimental fields (nodes and domainNames peers) are
# accepted by the API server and reported as not realised by the controller.
set -euo pipefail
dst=${1:?usage: $0 DIR}
mod=sigs.k8s.io/network-policy-api
go mod download "$mod"
src=$(go list -m -f '{{.Dir}}' "$mod")/config/crd/experimental/policy.networking.k8s.io_clusternetworkpolicies.yaml
install -m 0644 "$src" "$dst/policy.networking.k8s.io_clusternetworkpolicies.yaml"
