#!/usr/bin/env bash
# Fuzzes the policy parser and formatter for a bounded time.
#
#   scripts/fuzz.sh [SECONDS]     (default 60)
#
# Installs cargo-fuzz if missing. cargo-fuzz needs nightly-only rustc flags;
# RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them. Crashes are written
# to policy-lang/fuzz/artifacts/parse/; the growing corpus to
# policy-lang/fuzz/corpus/parse/ (both git-ignored). Seeds: the documented
# example and the syntax error case files.
set -euo pipefail

seconds="${1:-60}"
root="$(cd "$(dirname "$0")/.." && pwd)"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
# Address sanitizer needs a nightly std; `FUZZ_SANITIZER=address` to try it.
sanitizer="${FUZZ_SANITIZER:-none}"

cd "$root/policy-lang"
mkdir -p fuzz/corpus/parse
exec cargo fuzz run --sanitizer "$sanitizer" parse \
    fuzz/corpus/parse fuzz/seeds tests/cases/errors \
    -- -max_total_time="$seconds" -max_len=4096 -timeout=10
