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
# The server is started with an audit log of the requests of the identity
# `tollgate-operator` ($TESTBED_APISERVER_DIR/audit.log, policy
# scripts/audit-policy.yaml; read by scripts/rbac-audit.py), on top of any
# TESTBED_APISERVER_ARGS.
#   scripts/apiserver.sh audit-log           # prints the audit log's path
#   scripts/apiserver.sh kubeconfig-for NAME FILE
#                                            # writes FILE: a kubeconfig for user NAME
#                                            # (a client certificate signed by the testbed's CA)
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
audit_log=$TESTBED_APISERVER_DIR/audit.log
export TESTBED_APISERVER_ARGS="${TESTBED_APISERVER_ARGS:-} --audit-log-path=$audit_log --audit-policy-file=$repo_root/scripts/audit-policy.yaml"

usage() { echo "usage: $0 start|stop|status|audit-log|kubeconfig-for NAME FILE" >&2; }

case ${1:-} in
  start)
    mkdir -p "$TESTBED_APISERVER_DIR"
    # a fresh server starts a fresh audit log (readers keep their offset
    # within one server's life)
    if ! "$script" status >/dev/null 2>&1; then : > "$audit_log"; fi
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
  audit-log)
    printf '%s\n' "$audit_log"
    ;;
  kubeconfig-for)
    name=${2:?user name} out=${3:?output file}
    pki=$TESTBED_APISERVER_DIR/run/pki
    admin=$TESTBED_APISERVER_DIR/kubeconfig
    [[ -f $pki/ca.key && -f $admin ]] || { echo "apiserver.sh: no testbed CA or kubeconfig; start the server first" >&2; exit 1; }
    tmp=$(mktemp -d)
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$name/O=system:masters" \
      -keyout "$tmp/key.pem" -out "$tmp/csr.pem" 2>/dev/null
    # X.509 v3 (extensions given), which rustls requires of a client certificate
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' > "$tmp/ext"
    openssl x509 -req -in "$tmp/csr.pem" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
      -CAserial "$tmp/ca.srl" -days 2 -extfile "$tmp/ext" -out "$tmp/crt.pem" 2>/dev/null
    cluster=$(KUBECONFIG=$admin kubectl config view -o jsonpath='{.contexts[?(@.name=="testbed")].context.cluster}')
    cp "$admin" "$out"
    chmod 600 "$out"
    KUBECONFIG=$out kubectl config set-credentials "$name" --client-certificate="$tmp/crt.pem" \
      --client-key="$tmp/key.pem" --embed-certs=true >/dev/null
    KUBECONFIG=$out kubectl config set-context "$name" --cluster="$cluster" --user="$name" >/dev/null
    KUBECONFIG=$out kubectl config use-context "$name" >/dev/null
    rm -rf "$tmp"
    ;;
  *)
    usage
    exit 2
    ;;
esac
