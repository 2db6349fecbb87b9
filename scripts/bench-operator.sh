#!/usr/bin/env bash
# The operator's benchmark: convergence time from a TollPolicy spec change to
# every target applied, for fleets of 10, 100 and 1,000 targets (fake agents
# in-process behind real HTTP on loopback addresses, a pod-selector fleet),
# with bakeSeconds 0 and with a staged rollout (bake excluded); the
# operator at many policies (the memory phase): its RSS once N TollPolicies
# are Applied on a static or pod-selector fleet, a resync after a restart
# (with and without the agents' summaries), one change, the idle CPU with
# and without the summaries' entity tags, and a change of every policy at
# once (batches across policies); baselines of the API server alone. Runs
# the real tollgate-operator binary (release build) against the testbed API
# server. See docs/operator.md, "Benchmark".
#
#   scripts/bench-operator.sh [--sizes 10,100,1000|none] [--reps 5] [--policies 1000]
#       [--policy-file COMPILED.yaml] [--targets 3] [--fleet static|pods]
#       [--resync-ttls 0,2000] [--idle-secs 0] [--base-change no|yes]
#
# The run of docs/operator.md at 10,000 policies on 100 pods:
#   scripts/bench-operator.sh --sizes none --policies 10000 --targets 100 \
#     --fleet pods --resync-ttls 2000 --idle-secs 120 --base-change yes
#
# Uses the running testbed API server or starts it (and then stops it at the
# end). Work files (the operator's logs): ${TOLLGATE_RUN:-/tmp/tollgate-run}/bench-operator/.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

WORK=${TOLLGATE_RUN:-/tmp/tollgate-run}/bench-operator
mkdir -p "$WORK"

say "building tollgate-operator and the benchmark (release)"
cargo build --quiet --locked --release -p tollgate-operator --bin tollgate-operator --example bench-operator

started=
if ! scripts/apiserver.sh status >/dev/null 2>&1; then started=1; fi
eval "$(scripts/apiserver.sh start)"
cleanup() { if [ -n "$started" ]; then scripts/apiserver.sh stop >/dev/null 2>&1 || true; fi; }
trap cleanup EXIT

say "benchmark ($(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
"$CARGO_TARGET_DIR/release/examples/bench-operator" \
  --operator "$CARGO_TARGET_DIR/release/tollgate-operator" --work "$WORK" "$@"
