#!/usr/bin/env bash
# Every test of the project, on real parts: formatting and lints, the example
# policies checked, scenario-tested, compiled and applied to a real Kubernetes
# API server (started here), the Kamailio SBC configuration driven by real
# SIPp calls, the container images built and run, every input fuzzed for a
# bounded time, and all unit and integration tests (generated files are
# checked there).
#
#   scripts/test.sh
#
# Settings: TOLLGATE_APISERVER_SCRIPT (the testbed API server script, default
# ../shared/testbed/apiserver/testbed-apiserver.sh beside the checkout),
# TESTBED_APISERVER_DIR (its build cache), TOLLGATE_FUZZ_SECONDS (seconds per fuzz target, default 30).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

say "formatting"
cargo fmt --all -- --check

say "lints"
cargo clippy --locked --workspace --all-targets -- -D warnings

say "layering: crate dependency rules and module cycles (docs/architecture.md)"
scripts/check-layering.py

say "building every binary and example of the workspace once (scripts/lib.sh build_all)"
build_all

say "starting the test API server"
ensure_kubectl
started_here=0
if ! scripts/apiserver.sh status >/dev/null 2>&1; then started_here=1; fi
exports=$(scripts/apiserver.sh start)
eval "$exports"
[ -n "${KUBECONFIG:-}" ] || die "the API server script printed no KUBECONFIG"
cleanup() { if [ "$started_here" = 1 ]; then scripts/apiserver.sh stop || true; fi; }
trap cleanup EXIT

say "example policies: check, fmt, compile, apply to the API server"
scripts/test-examples.sh

say "the SBC: real Kamailio and SIPp calls against docs/sbc.md"
scripts/test-sbc.sh

say "the SBC's TLS, client certificate and SRTP requirements, and IPv6 sources: real TLS calls"
scripts/test-tls.sh

say "agreement: the evaluator and the real SBC decide the same generated calls"
scripts/test-agreement.sh

say "the agent: authenticated API, validation before Kamailio is touched, hot apply, recovery"
scripts/test-agent.sh

say "the Helm chart and example manifests: real Helm engine, offline schema validation"
scripts/test-chart.sh

say "the example alert rules: up to date, promtool, Prometheus Operator schema"
scripts/test-rules.sh

say "a local fleet of three Kamailio+agent SBCs (scripts/fleet.sh)"
scripts/test-fleet.sh

say "fleet-wide limits: three SBCs counting in one shared Redis, real calls spread over them, one cut off the store"
scripts/test-fleetwide.sh

say "the operator end to end: tollgate-operator, the API server, four local SBCs, kubectl and calls"
scripts/test-operator.sh

say "the images: built from Debian's archive, reproducible, run as a kubelet would (the examples' SBC pods, the chart's operator), a rollout and calls through them"
scripts/test-images.sh

say "alerts: agent metrics -> Prometheus rules -> Alertmanager -> the webhook receiver (real Prometheus, Alertmanager)"
scripts/test-alerts.sh

say "the anomaly loop closed: SIPp -> Prometheus -> Alertmanager -> operator -> block on both SBCs; automatic rollback"
scripts/test-anomaly.sh

say "the main job: the one-command local stack (scripts/run.sh), its tour, then scripts/run.sh stop"
run_out=$(scripts/run.sh 2>&1) || { printf '%s\n' "$run_out" | tail -40; die "scripts/run.sh failed"; }
printf '%s\n' "$run_out" | tail -30
for want in "-> 200 dst:national" "-> 403 dst:international" "-> 403 dst:prefix:1212976" "-> 403 src:unknown"; do
  grep -qF -- "$want" <<< "$run_out" || die "the tour of scripts/run.sh lacks a call '$want'"
done
scripts/run.sh stop

say "fuzzing every input target for ${TOLLGATE_FUZZ_SECONDS:-30}s each (scripts/fuzz.sh)"
scripts/fuzz.sh "${TOLLGATE_FUZZ_SECONDS:-30}"

say "unit and integration tests"
log=$(mktemp)
cargo test --locked --workspace 2>&1 | tee "$log"
sum() { grep -Eo "[0-9]+ $1" "$log" | awk '{ n += $1 } END { print n + 0 }'; }
# one closing line for the whole run (cargo's last line is a doc-test binary's)
echo "tests: $(sum passed) passed, $(sum failed) failed"
rm -f "$log"
