#!/usr/bin/env bash
# Benchmarks of the policy evaluator and `tollgate replay`, in release mode:
# decisions per second on one thread (100,000-prefix policy, against a bare
# HashMap lookup and a 100-prefix policy), replay time for 100,000 and
# 1,000,000 generated CDR rows and the peak memory (VmHWM) of each.
#
#   scripts/bench.sh
#
# Settings: TOLLGATE_BENCH_DECISIONS (decisions per figure, default 2000000),
# TOLLGATE_BENCH_ROWS (rows of the large CDR, default 1000000).
# Note: generating and compiling the 100,000-prefix policy takes a while
# (about 80 s; the compiler's line/column lookups are quadratic in file size).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

say "cargo bench -p tollgate-policy --bench eval (release)"
cargo bench --locked -p tollgate-policy --bench eval
