#!/usr/bin/env bash
# Benchmark of the anomaly loop's fast path (operator/examples/bench-anomaly.rs,
# release mode): webhook POST (the operator's real receiver and sink over
# HTTP) -> block enforced on every target, confirmed by read-back of each
# agent's GET /v1/state, for 1, 10 and 100 targets (fake agents over real
# HTTP on loopback), the TollPolicy and SbcFleet on the real testbed API
# server. Prints p50/p99/max per fleet size; asserts no times.
#
#   scripts/bench-anomaly.sh [ALERTS [TARGETS...]]    (default: 50  1 10 100)
#
# Uses the running testbed API server or starts one (and then stops it).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_kubectl

started_api=0
scripts/apiserver.sh status >/dev/null 2>&1 || started_api=1
eval "$(scripts/apiserver.sh start)"
cleanup() { if [ "$started_api" = 1 ]; then scripts/apiserver.sh stop || true; fi; }
trap cleanup EXIT
kubectl --request-timeout=10s apply --server-side --force-conflicts -f crds/ >/dev/null
kubectl --request-timeout=10s wait --for=condition=Established --timeout=30s \
  crd/tollpolicies.tollgate.dev crd/sbcfleets.tollgate.dev >/dev/null

say "bench-anomaly (release)"
cargo run --quiet --locked --release -p tollgate-operator --example bench-anomaly -- "${@:-50}"
