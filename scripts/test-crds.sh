#!/usr/bin/env bash
# Runs the tollgate-crds tests: unit tests, the CRD YAML freshness check, and
# the tests against the testbed API server. With KUBECONFIG already set (to a
# testbed kubeconfig), that server is used; otherwise `scripts/apiserver.sh
# start` starts one (and leaves it running: `scripts/apiserver.sh stop`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo run -q -p tollgate-crds --bin crdgen -- --check
cargo test -p tollgate-crds --lib --bins
if [[ -z ${KUBECONFIG:-} ]]; then
  exports=$(scripts/apiserver.sh start)
  eval "$exports"
fi
cargo test -p tollgate-crds --test apiserver -- --nocapture
