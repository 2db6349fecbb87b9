#!/usr/bin/env bash
# Starts or stops the testbed Kubernetes API server that the tests use.
#
#   exports=$(scripts/apiserver.sh start)   # prints `export KUBECONFIG=...` (only that, on stdout)
#   eval "$exports"
#   scripts/apiserver.sh stop
#   scripts/apiserver.sh status            # exit 0 when running and ready
#
# Wraps ../shared/testbed/apiserver/testbed-apiserver.sh. Settings:
#   TOLLGATE_APISERVER_SCRIPT  the wrapped script (default: ../shared/testbed/apiserver/testbed-apiserver.sh,
#                              relative to the repository root)
#   TESTBED_APISERVER_DIR      its work dir (default: ${XDG_CACHE_HOME:-$HOME/.cache}/tollgate/testbed-apiserver,
#                              so the ~3 min build is cached between runs)
# Other TESTBED_APISERVER_* variables pass through (see the wrapped script's README).
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
script=${TOLLGATE_APISERVER_SCRIPT:-$repo_root/../shared/testbed/apiserver/testbed-apiserver.sh}
case $script in
  /*) ;;
  *) script=$repo_root/$script ;;
esac
if [[ ! -x $script ]]; then
  echo "apiserver.sh: testbed script not found or not executable: $script (set TOLLGATE_APISERVER_SCRIPT)" >&2
  exit 1
fi
script=$(cd "$(dirname "$script")" && pwd)/$(basename "$script")

export TESTBED_APISERVER_DIR=${TESTBED_APISERVER_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tollgate/testbed-apiserver}

usage() { echo "usage: $0 start|stop|status" >&2; }

case ${1:-} in
  start)
    mkdir -p "$TESTBED_APISERVER_DIR"
    exports=$("$script" start)
    if [[ $exports != export\ KUBECONFIG=* ]]; then
      echo "apiserver.sh: unexpected output from $script start: $exports" >&2
      exit 1
    fi
    printf '%s\n' "$exports"
    ;;
  stop)
    "$script" stop
    ;;
  status)
    "$script" status
    ;;
  *)
    usage
    exit 2
    ;;
esac
