#!/usr/bin/env bash
# Benchmarks of the policy language, in release mode, one thread.
#
#   scripts/bench.sh [eval|lang|all]        (default: all)
#
# eval: the policy evaluator and `tollgate replay`: decisions per second
# (100,000-prefix policy, against a bare HashMap lookup and a 100-prefix
# policy), replay time for 100,000 and 1,000,000 generated CDR rows and the
# peak memory (VmHWM) of each (policy-lang/benches/eval.rs).
#
# lang: the language at provider scale: `check` and `compile` of one tenant
# with 10,000 and 100,000 `deny prefix` lines and of 1,000 small tenants
# sharing a base, each next to serde_yaml reading the compiled output back,
# the baseline of the same run (policy-lang/benches/lang.rs).
#
# Settings: TOLLGATE_BENCH_DECISIONS (decisions per figure, default 2000000),
# TOLLGATE_BENCH_ROWS (rows of the large CDR, default 1000000),
# TOLLGATE_BENCH_LANG_LINES (deny-list sizes, default 10000,100000;
# 10000,100000,1000000 adds the carrier-sized list, about a minute more),
# TOLLGATE_BENCH_TENANTS (small tenants, default 1000).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

mode=${1:-all}
case $mode in
  eval | lang | all) ;;
  *) die "usage: scripts/bench.sh [eval|lang|all]" ;;
esac

if [ "$mode" != lang ]; then
  say "cargo bench -p tollgate-policy --bench eval (release)"
  cargo bench --locked -p tollgate-policy --bench eval
fi
if [ "$mode" != eval ]; then
  say "cargo bench -p tollgate-policy --bench lang (release)"
  cargo bench --locked -p tollgate-policy --bench lang
fi
