#!/usr/bin/env bash
# The main job: check and compile the example policies, then run Tollgate
# locally on real parts and print a short tour.
#
#   scripts/run.sh [up]        check + compile examples/policies (build/compiled/), then start
#                              (or reuse) the local stack, apply the tenants, wait until every
#                              TollPolicy is Applied, print the tour
#   scripts/run.sh tour        print the tour again (the stack must be up)
#   scripts/run.sh status      what of the stack runs
#   scripts/run.sh stop        delete the stack's TollPolicies (the operator removes the tenants
#                              from the SBCs), stop the operator and the SBCs; the API server too
#                              when this script started it
#   scripts/run.sh compile [POLICY_DIR] [OUT_DIR]
#                              only check + compile (the former behaviour), no stack
#
# The stack: the testbed Kubernetes API server (scripts/apiserver.sh), the
# CRDs, TG_STACK_SBCS (default 3) local SBCs, each a real Kamailio with its
# tollgate-agent (scripts/fleet.sh, fleet "local"), an SbcFleet "edge" of
# static endpoints with the agents' token in a Secret, the tollgate-operator
# binary (namespace "tollgate", one replica, no leader election), and one
# TollPolicy per example tenant. SIP calls reach the local SBCs from
# loopback, so the TollPolicies carry the LOOPBACK COPIES of the compiled
# tenants (operator/kamailio/examples/agreement.rs `prepare`): every IPv4 source
# network a.b.c.d/len becomes 127.b.c.d/len, rate limits are raised; and a
# local GeoIP database places those sources. Their rollout is canary 1 SBC,
# bake 5 s, then the rest.
# Files: ${TOLLGATE_RUN:-/tmp/tollgate-run}/stack/ (operator.log, the
# TollPolicies applied, kubeconfig exports), the SBCs' under .../local/.
# Idempotent: a second `up` reuses what runs and applies the same objects.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

RUN=${TOLLGATE_RUN:-/tmp/tollgate-run}
export TOLLGATE_RUN=$RUN
STACK=$RUN/stack
FLEET=local
NS=tollgate
NSBC=${TG_STACK_SBCS:-3}
METRICS=${TG_STACK_METRICS:-127.0.0.1:18080}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

compile() {
  local policies=${1:-$ROOT/examples/policies} out=${2:-$ROOT/build/compiled} tg
  tg=$(tollgate_bin)
  say "checking $policies"
  "$tg" check "$policies"
  say "compiling into $out"
  "$tg" compile "$policies" --namespace "$NS" --fleet edge --output "$out"
  ls -l "$out" >&2
}

kube_env() { # exports KUBECONFIG of the running API server
  [ -f "$STACK/kubeconfig.env" ] || die "the stack is not up (scripts/run.sh)"
  # shellcheck disable=SC1091
  . "$STACK/kubeconfig.env"
}

start_apiserver() {
  mkdir -p "$STACK"
  if ! scripts/apiserver.sh status >/dev/null 2>&1; then
    say "starting the testbed API server (the first build takes ~3 min)"
    : > "$STACK/apiserver.ours"
  fi
  scripts/apiserver.sh start > "$STACK/kubeconfig.env"
  kube_env
  ensure_kubectl
}

loopback_copies() { # -> $STACK/policies/*.yaml, $STACK/geo.mmdb
  local py helper
  say "loopback copies of the compiled tenants"
  build_all
  helper=$CARGO_TARGET_DIR/debug/examples/agreement
  rm -rf "$STACK/agree"
  "$helper" prepare examples/policies "$STACK/agree" >/dev/null
  py=$(python_env)
  mkdir -p "$STACK/policies"
  "$py" - "$ROOT/build/compiled" "$STACK/agree/fleet" "$STACK/policies" "$STACK/agree/geo.txt" "$STACK/geo.mmdb" <<'PY'
import filecmp, os, shutil, sys, yaml
from mmdb_writer import MMDBWriter
from netaddr import IPSet
compiled, copies, out, geo, mmdb = sys.argv[1:6]
for f in sorted(os.listdir(compiled)):
    tp = yaml.safe_load(open(os.path.join(compiled, f)))
    tenant = tp["spec"]["tenant"]
    copy = os.path.join(copies, tenant + ".yaml")
    if not os.path.exists(copy):
        sys.exit(f"no loopback copy of tenant {tenant}")
    tp["spec"]["policy"] = yaml.safe_load(open(copy))
    tp["spec"].pop("sourceHash", None)  # the copy is not what the source compiles to
    tp["spec"]["rollout"] = {"canary": {"count": 1}, "bakeSeconds": 5}
    tp["metadata"].setdefault("annotations", {})["tollgate.dev/local-stack"] = "loopback copy (scripts/run.sh)"
    with open(os.path.join(out, f), "w") as o:
        yaml.safe_dump(tp, o, sort_keys=False)
# the GeoIP database: rewritten only when it changes (the agents keep theirs open)
w = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoIP2-Country",
               languages=["en"], description="tollgate local stack geo")
for line in open(geo):
    net, cc = line.split()
    w.insert_network(IPSet([net]), {"country": {"iso_code": cc, "names": {"en": cc}}})
w.to_db_file(mmdb + ".new")
if os.path.exists(mmdb) and filecmp.cmp(mmdb, mmdb + ".new", shallow=False):
    os.remove(mmdb + ".new")
else:
    shutil.move(mmdb + ".new", mmdb)
PY
}

start_fleet() {
  say "local SBCs (Kamailio + tollgate-agent) x $NSBC, counting limits fleet-wide in one Redis"
  TG_FLEET_STORE=1 TG_GEOIP_DB=$STACK/geo.mmdb scripts/fleet.sh start "$FLEET" "$NSBC" | sed 's/^/  /' >&2
}

apply_fleet() {
  say "CRDs, namespace $NS, agent token Secret, SbcFleet edge"
  kubectl apply --server-side --field-manager tollgate-run -f crds/ >/dev/null
  kubectl wait --for=condition=Established --timeout=60s crd --all >/dev/null
  kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  kubectl -n "$NS" create secret generic agent-token --from-file=token="$RUN/$FLEET/token" \
    --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  {
    printf 'apiVersion: tollgate.dev/v1alpha1\nkind: SbcFleet\nmetadata:\n  name: edge\n  namespace: %s\n' "$NS"
    printf 'spec:\n  backend: kamailio\n  agentTokenSecret: {name: agent-token, key: token}\n  endpoints:\n'
    awk -F'\t' '!/^#/ {printf "  - {host: \"%s\", port: %s}\n", $5, $6}' "$RUN/$FLEET/fleet.tsv"
  } > "$STACK/sbcfleet.yaml"
  kubectl apply --server-side --field-manager tollgate-run -f "$STACK/sbcfleet.yaml" >/dev/null
}

start_operator() {
  local bin pid exe
  say "tollgate-operator"
  build_all
  bin=$CARGO_TARGET_DIR/debug/tollgate-operator
  if alive "$STACK/operator.pid"; then
    pid=$(cat "$STACK/operator.pid")
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
    if [[ $exe == *" (deleted)" ]]; then
      echo "  the binary was rebuilt: restarting the operator (pid $pid)" >&2
      stop_operator
    else
      echo "  running (pid $pid), reused" >&2
      return 0
    fi
  fi
  # its own session: it outlives this script; `scripts/run.sh stop` ends it
  setsid "$bin" --namespace "$NS" --no-leader-election --metrics-addr "$METRICS" --identity local-stack \
    >> "$STACK/operator.log" 2>&1 < /dev/null &
  echo $! > "$STACK/operator.pid"
  local i
  for i in $(seq 1 100); do
    alive "$STACK/operator.pid" || { tail -5 "$STACK/operator.log" >&2; die "the operator exited ($STACK/operator.log)"; }
    [ "$(curl -s --max-time 2 "http://$METRICS/readyz" || true)" = ready ] && break
    sleep 0.2
  done
  echo "  started (pid $(cat "$STACK/operator.pid")), log $STACK/operator.log" >&2
}

stop_operator() {
  local pid i
  alive "$STACK/operator.pid" || { rm -f "$STACK/operator.pid"; return 0; }
  pid=$(cat "$STACK/operator.pid")
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$STACK/operator.pid"
}

apply_policies() {
  local n i lines
  say "TollPolicies (loopback copies) applied; waiting until every one is Applied"
  kubectl apply --server-side --field-manager tollgate-run -f "$STACK/policies/" | sed 's/^/  /' >&2
  n=$(find "$STACK/policies" -name '*.yaml' | wc -l)
  for i in $(seq 1 300); do
    lines=$(kubectl -n "$NS" get tollpolicies -o \
      jsonpath='{range .items[*]}{.status.phase}:{.status.observedGeneration}:{.metadata.generation}{"\n"}{end}')
    if [ "$(grep -c '^Applied:\([0-9]*\):\1$' <<< "$lines")" = "$n" ]; then return 0; fi
    sleep 1
  done
  kubectl -n "$NS" get tollpolicies >&2 || true
  die "not every TollPolicy Applied within 300 s (operator log: $STACK/operator.log)"
}

call() { # I SRC NUMBER WHAT
  local got
  got=$(scripts/fleet.sh call "$FLEET" "$1" "$2" "$3" 2>&1 || true)
  printf '  %-52s -> %s\n' "$4" "$got"
  printf '      scripts/fleet.sh call %s %s %s %s\n' "$FLEET" "$1" "$2" "$3"
}

tour() {
  kube_env
  local sip1 sip2
  sip1=$(awk -F'\t' -v n="$FLEET-1" '$1 == n {print $2}' "$RUN/$FLEET/fleet.tsv")
  sip2=$(awk -F'\t' -v n="$FLEET-2" '$1 == n {print $2}' "$RUN/$FLEET/fleet.tsv")
  cat <<EOF

================================ Tollgate, running locally ================================
API server (testbed) : $(sed 's/^export //' "$STACK/kubeconfig.env")
SBCs                 : $NSBC x Kamailio + tollgate-agent (scripts/fleet.sh status $FLEET)
operator             : pid $(cat "$STACK/operator.pid"), metrics http://$METRICS/metrics
To use kubectl yourself: $(cat "$STACK/kubeconfig.env")

$ kubectl -n $NS get tollpolicies
$(kubectl -n "$NS" get tollpolicies)

$ kubectl -n $NS get sbcfleets    (DEGRADED: SBCs deciding limits alone, without the fleet's store)
$(kubectl -n "$NS" get sbcfleets)

$ kubectl -n $NS get policyrevisions
$(kubectl -n "$NS" get policyrevisions)

$ kubectl -n $NS get events --sort-by=.lastTimestamp | tail -6
$(kubectl -n "$NS" get events --sort-by=.lastTimestamp 2>/dev/null | tail -6)

Calls through the SBCs (SIPp; answer code and the policy rule that decided). The
TollPolicies hold the loopback copies of the tenants: acme's 198.51.100.0/24 is
127.51.100.0/24 here.
EOF
  call 1 127.51.100.20 +12125550100 "acme, New York number, via SBC 1 ($sip1)"
  call 2 127.51.100.20 +18765550100 "acme, Jamaica (international), via SBC 2 ($sip2)"
  call 1 127.51.100.20 +12129761234 "acme, 976 pay-per-call, via SBC 1"
  call 2 127.0.0.9 +12125550100 "unknown source 127.0.0.9, via SBC 2"
  cat <<EOF

More: kubectl -n $NS describe tollpolicy acme; kubectl -n $NS get tollpolicy acme -o yaml
Change a tenant (examples/policies/tenants/*.tgp) and re-run scripts/run.sh: it compiles and
applies the new copy; the operator rolls it out, canary first (kubectl -n $NS get tollpolicies -w).
Logs: operator $STACK/operator.log; agents $RUN/$FLEET/sbc<i>/agent.log; SBCs scripts/sbc.sh.
Stop: scripts/run.sh stop
EOF
}

status() {
  local rc=0
  if scripts/apiserver.sh status >/dev/null 2>&1; then echo "apiserver up"; else echo "apiserver down"; rc=1; fi
  if alive "$STACK/operator.pid"; then echo "operator up (pid $(cat "$STACK/operator.pid"))"; else echo "operator down"; rc=1; fi
  scripts/fleet.sh status "$FLEET" || rc=1
  return $rc
}

stop() {
  if [ -f "$STACK/kubeconfig.env" ] && scripts/apiserver.sh status >/dev/null 2>&1; then
    kube_env
    if alive "$STACK/operator.pid"; then
      say "deleting the stack's TollPolicies (the operator removes the tenants from the SBCs)"
      kubectl -n "$NS" delete tollpolicies --all --timeout=90s >&2 || true
    fi
    # without an operator nobody would remove the finalizers
    kubectl -n "$NS" get tollpolicies -o name 2>/dev/null | while read -r p; do
      kubectl -n "$NS" patch "$p" --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1 || true
      kubectl -n "$NS" delete "$p" --wait=false >/dev/null 2>&1 || true
    done
    # no garbage collector in the testbed API server: the owned revisions too
    kubectl -n "$NS" delete policyrevisions --all >/dev/null 2>&1 || true
    kubectl -n "$NS" delete sbcfleet edge --ignore-not-found >/dev/null 2>&1 || true
  fi
  say "stopping the operator and the SBCs"
  stop_operator
  scripts/fleet.sh stop "$FLEET" || true
  if [ -f "$STACK/apiserver.ours" ]; then
    say "stopping the API server (this script started it)"
    scripts/apiserver.sh stop || true
    rm -f "$STACK/apiserver.ours" "$STACK/kubeconfig.env"
  fi
}

up() {
  compile
  start_apiserver
  loopback_copies
  start_fleet
  apply_fleet
  start_operator
  apply_policies
  tour
}

cmd=${1:-up}
[ $# -gt 0 ] && shift
case $cmd in
  up) [ $# -eq 0 ] || die "usage: scripts/run.sh [up|tour|status|stop|compile [POLICY_DIR] [OUT_DIR]]"; up ;;
  tour) tour ;;
  status) status ;;
  stop) stop ;;
  compile) compile "$@" ;;
  *) die "usage: scripts/run.sh [up|tour|status|stop|compile [POLICY_DIR] [OUT_DIR]]" ;;
esac
