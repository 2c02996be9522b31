#!/usr/bin/env bash
# demo.sh — the whole system on one machine, as root: a real API server with the sdncni
# CRDs, OVN central and two nodes joined by Geneve, sdncni-controller on each node, two
# VPNs with overlapping CIDRs, pods through libcni, connectivity inside each VPN and
# isolation across them. A thin wrapper around the Go program in test/demo (docs/demo.md).
#
#   hack/demo.sh [--keep]      (root; what 'make demo' runs, after 'make deps build')
#   hack/demo.sh down          clean up after --keep (or after a run that was killed)
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
down | --down) exec go run ./test/demo --down ;;
"" | --keep) ;;
*) echo "usage: $0 [--keep|down]" >&2; exit 2 ;;
esac
[[ $(id -u) == 0 ]] || { echo "demo: run as root" >&2; exit 1; }
make --no-print-directory build
exec go run ./test/demo "$@"
