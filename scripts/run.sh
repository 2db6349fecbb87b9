#!/usr/bin/env bash
# The main job: check every policy in the example GitOps repo and compile the
# tenants into TollPolicy resources (build/compiled/<tenant>.yaml).
#   scripts/run.sh [POLICY_DIR] [OUT_DIR]
set -euo pipefail
. "$(dirname "$0")/lib.sh"

policies=${1:-$ROOT/examples/policies}
out=${2:-$ROOT/build/compiled}
tg=$(tollgate_bin)

say "checking $policies"
"$tg" check "$policies"
say "compiling into $out"
"$tg" compile "$policies" --namespace tollgate --fleet edge --output "$out"
ls -l "$out"
