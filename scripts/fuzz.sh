#!/usr/bin/env bash
# Fuzzes every input target for a bounded time each (libFuzzer, cargo-fuzz).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     (default 30 s each, every target)
#
# Targets (policy-lang/fuzz/fuzz_targets/, docs/testing.md "Fuzzing"):
#   parse     the parser and formatter (format, reparse, idempotence)
#   policy    a tenant file through check, compile (YAML round trip) and the
#             evaluator: emergency numbers always allowed, a number under a
#             deny entry never allowed
#   scenario  scenario files (`*.test.yaml`), their calls evaluated
#   cdr       CDR rows through `tollgate replay`
#   webhook   the Alertmanager webhook body, every alert mapped
#   agent_api the agent's HTTP request: its path through the router (and
#             back), its body through every request reader
# An input that takes more than 5 s is a failure too (-timeout=5), as is a
# crash or more than 2 GB of memory. Each target first runs every file of
# policy-lang/fuzz/regressions/TARGET/ (inputs found before), then fuzzes
# from its seeds (policy-lang/fuzz/seeds/TARGET/) and its corpus, kept in
# ${TOLLGATE_CACHE:-.tollgate-cache}/fuzz-corpus/TARGET between runs. A
# finding is written to policy-lang/fuzz/artifacts/TARGET/; fix it and copy it
# into regressions/TARGET/. Prints one line per target: executions, seconds,
# corpus size, the slowest input's seconds; fails on any finding. A longer run: `scripts/fuzz.sh 600`.
#
# Installs cargo-fuzz if missing. cargo-fuzz needs nightly-only rustc flags;
# RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them.
set -euo pipefail

seconds="${1:-30}"
shift || true
root="$(cd "$(dirname "$0")/.." && pwd)"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(parse policy scenario cdr webhook agent_api)

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
# Address sanitizer needs a nightly std; `FUZZ_SANITIZER=address` to try it.
sanitizer="${FUZZ_SANITIZER:-none}"
cache="${TOLLGATE_CACHE:-$root/.tollgate-cache}/fuzz-corpus"

cd "$root/policy-lang"
cargo fuzz build --sanitizer "$sanitizer" >&2
bin="$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
failed=0
total=0
printf '%-9s %12s %8s %8s %8s\n' target executions seconds corpus slowest
for t in "${targets[@]}"; do
    [ -x "$bin/$t" ] || { echo "no fuzz target $t" >&2; exit 2; }
    mkdir -p "$cache/$t" "fuzz/artifacts/$t"
    extra=()
    [ "$t" = parse ] && extra=(tests/cases/errors)
    # the regressions: each once
    if [ -n "$(ls -A "fuzz/regressions/$t" 2>/dev/null | grep -v '^README')" ]; then
        if ! "$bin/$t" -timeout=5 -rss_limit_mb=2048 -runs=0 $(ls -d fuzz/regressions/"$t"/* | grep -v README) > "$log" 2>&1; then
            tail -30 "$log" >&2
            echo "FAIL $t: a regression case fails again" >&2
            failed=1
            continue
        fi
    fi
    start=$(date +%s)
    if ! "$bin/$t" -timeout=5 -rss_limit_mb=2048 -max_len=8192 -max_total_time="$seconds" \
        -artifact_prefix="fuzz/artifacts/$t/" -print_final_stats=1 \
        "$cache/$t" "fuzz/seeds/$t" "${extra[@]}" > "$log" 2>&1; then
        tail -40 "$log" >&2
        echo "FAIL $t: a finding in fuzz/artifacts/$t/ (above)" >&2
        failed=1
    fi
    runs=$(awk '/stat::number_of_executed_units/ { print $NF }' "$log" | tail -1)
    slowest=$(awk '/stat::slowest_unit_time_sec/ { print $NF }' "$log" | tail -1)
    total=$((total + ${runs:-0}))
    printf '%-9s %12s %8s %8s %8s\n' "$t" "${runs:-?}" "$(( $(date +%s) - start ))" "$(ls "$cache/$t" | wc -l)" "${slowest:-?}"
done
echo "fuzzing: $total executions over ${#targets[@]} targets, $([ $failed = 0 ] && echo 'no finding' || echo 'FINDINGS above')"
exit "$failed"
