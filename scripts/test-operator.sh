#!/usr/bin/env bash
# The operator end to end, on real parts: the tollgate-operator binary against
# the testbed Kubernetes API server, a fleet of four local SBCs (real Kamailio +
# tollgate-agent each, scripts/fleet.sh), TollPolicies applied with kubectl,
# SIPp calls through every SBC. Scenarios (docs/operator.md, "Tests"):
#
#   1 static fleet: a TollPolicy (loopback copy of the acme example) rolls out
#     to 3 SBCs listed as endpoints, token from a Secret; calls and agent state;
#     each SBC was staged then committed (agent and operator metrics), no PUT
#   2 `kubectl get tollpolicies` columns, `kubectl get events` reasons
#   3 a second revision rolls out in observable steps (canary 1, bake 4 s,
#     batch 1), sampled every 0.3 s
#   4 a canary whose Kamailio is down (reload fails) -> rolled back; a
#     non-canary agent stopped mid-rollout -> Degraded, halted, completes when
#     it returns
#   8 deleting the TollPolicy removes the tenant from every SBC (finalizer)
#   5 a pod-selector fleet: Pods created and their status patched as a kubelet
#     would; a new Ready pod gets the current revision at once; a terminating
#     pod is skipped
#   6 the operator SIGKILLed during a bake resumes; no needless re-apply
#   7 two replicas, one Lease: only the leader acts; the other takes over
#   9 a tenant with 100,000 destination ranges: compiled into PolicyChunks,
#     kubectl apply, rolled out to SBCs 1-3, probe calls enforced
#  10 six tenants changed together: batches
#  12 kubectl tollgate: status per SBC, promote, abort, pause/resume,
#     history and its diff, explain against the revision in force
#  11 least privilege: the operators' requests against the chart's RBAC
#
#   scripts/test-operator.sh
#
# Uses KUBECONFIG when set (scripts/test.sh); otherwise starts the testbed API
# server and stops it at the end. Each scenario group has its own namespace
# and its own operator process(es) limited to it (--namespace). Settings:
# TG_OP_NET (third octet of the fleet's loopback addresses, default 205),
# TOLLGATE_RUN (default /tmp/tollgate-run). Every wait is bounded. About 3-4
# minutes once built.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

scripts/sbc-install.sh
ensure_kubectl

RUN=${TOLLGATE_RUN:-/tmp/tollgate-run}
export TOLLGATE_RUN=$RUN
NET=127.0.${TG_OP_NET:-205}
export TG_FLEET_NET=${TG_OP_NET:-205}
NAME=tgoptest
WORK=$RUN/$NAME-work
PY=$(python_env)
H="$PY $ROOT/scripts/operator-e2e.py"
T0=$(date +%s.%N)

elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
now() { date +%s.%N; }

say "building tollgate-operator, tollgate-agent, tollgate and the agreement helper"
build_all
OPBIN=$CARGO_TARGET_DIR/debug/tollgate-operator
export TG_AGENT_BIN=$CARGO_TARGET_DIR/debug/tollgate-agent
HELPER=$CARGO_TARGET_DIR/debug/examples/agreement
TG=$CARGO_TARGET_DIR/debug/tollgate

# --- the API server ---------------------------------------------------------
API_STARTED=0
if [ -z "${KUBECONFIG:-}" ]; then
  if ! scripts/apiserver.sh status >/dev/null 2>&1; then API_STARTED=1; fi
  exports=$(scripts/apiserver.sh start)
  eval "$exports"
fi
[ "$(kubectl config current-context)" = testbed ] || die "refusing to use a cluster whose context is not 'testbed'"
# The operators run as their own identity (user tollgate-operator, a client
# certificate of the testbed's CA), whose every request the API server's
# audit log records (scripts/apiserver.sh): scenario 11 checks them against
# the chart's RBAC.
AUDIT_LOG=$(scripts/apiserver.sh audit-log)
AUDIT_FROM=$(stat -c %s "$AUDIT_LOG" 2>/dev/null || echo 0)

# --- cleanup ------------------------------------------------------------------
OP_PIDS=()       # every operator started (pid), for the cleanup
NAMESPACES=()
op_logs_tail() {
  local f
  for f in "$WORK"/op-*.log; do
    [ -f "$f" ] || continue
    echo "---- last lines of $f"
    tail -25 "$f"
  done
}
cleanup() {
  local rc=$? p ns
  if [ "$FAIL" != 0 ] || [ "$rc" != 0 ]; then op_logs_tail >&2 || true; fi
  for p in "${OP_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${OP_PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  for ns in "${NAMESPACES[@]}"; do
    # no operator is left to run the finalizers: drop them, then the namespace
    for o in $(kubectl get tollpolicies,pods -n "$ns" -o name 2>/dev/null); do
      kubectl patch "$o" -n "$ns" --type merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1 || true
    done
    kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1 || true
  done
  scripts/fleet.sh stop "$NAME" 2>/dev/null || true
  if [ "$API_STARTED" = 1 ]; then scripts/apiserver.sh stop >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT
scripts/fleet.sh stop "$NAME" 2>/dev/null || true
rm -rf "$WORK"
mkdir -p "$WORK"
OP_KUBECONFIG=$WORK/operator.kubeconfig
scripts/apiserver.sh kubeconfig-for tollgate-operator "$OP_KUBECONFIG"

# --- helpers ------------------------------------------------------------------
SUFFIX=$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
new_ns() { # PURPOSE -> a fresh namespace
  local ns=tgop-$1-$SUFFIX
  kubectl create namespace "$ns" >/dev/null
  NAMESPACES+=("$ns")
  echo "$ns"
}

OP_PORT=9300
# op_start NS IDENTITY [FLAGS...]: an operator limited to NS; sets OP_PID, OP_METRICS
op_start() {
  local ns=$1 id=$2; shift 2
  OP_PORT=$((OP_PORT + 1))
  OP_METRICS=http://127.0.0.1:$OP_PORT
  KUBECONFIG=$OP_KUBECONFIG NO_COLOR=1 RUST_LOG=${TG_OP_LOG:-info} "$OPBIN" --namespace "$ns" --metrics-addr "127.0.0.1:$OP_PORT" \
    --identity "$id" --lease-namespace "$ns" --agent-timeout-secs 3 "$@" \
    >> "$WORK/op-$id.log" 2>&1 < /dev/null &
  OP_PID=$!
  OP_PIDS+=("$OP_PID")
  local i
  for i in $(seq 1 100); do
    kill -0 "$OP_PID" 2>/dev/null || { tail -20 "$WORK/op-$id.log" >&2; die "operator $id exited at start"; }
    curl -s --max-time 1 -o /dev/null "$OP_METRICS/healthz" && return 0
    sleep 0.1
  done
  die "operator $id did not serve /healthz within 10 s"
}
op_stop() { # PID [SIGNAL]
  kill -"${2:-TERM}" "$1" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
}

# wait_until SECONDS CMD...: polls every 0.2 s; WAITED = seconds it took
wait_until() {
  local limit=$1; shift
  local t0; t0=$(now)
  while true; do
    if "$@" >/dev/null 2>&1; then WAITED=$(elapsed "$t0"); return 0; fi
    if awk -v a="$t0" -v b="$(now)" -v l="$limit" 'BEGIN { exit !(b - a > l) }'; then
      WAITED=$(elapsed "$t0"); return 1
    fi
    sleep 0.2
  done
}

tp() { # NS JSONPATH: a field of TollPolicy acme
  kubectl get tollpolicy acme -n "$1" -o jsonpath="{$2}" 2>/dev/null
}
tp_of() { # NAME JSONPATH: a field of TollPolicy NAME in $NS
  kubectl get tollpolicy "$1" -n "$NS" -o jsonpath="{$2}" 2>/dev/null
}
phase_is() { [ "$(tp "$1" .status.phase)" = "$2" ]; }
applied_rev() { # NS REV APPLIED: phase Applied, currentRevision REV, applied APPLIED
  [ "$(tp "$1" .status.phase)" = Applied ] && [ "$(tp "$1" .status.currentRevision)" = "$2" ] &&
    [ "$(tp "$1" .status.applied)" = "$3" ]
}
status_line() { # NS: a short status for the log
  kubectl get tollpolicy acme -n "$1" -o jsonpath='{.status.phase} applied={.status.applied} current={.status.currentRevision} lastGood={.status.lastGoodRevision}' 2>/dev/null || true
}

TOKEN_FILE=$RUN/$NAME/token
agent_url() { echo "http://$NET.$1:9180"; }
state() { $H state "$(agent_url "$1")" "$TOKEN_FILE" acme; } # I -> "REV APPLIEDAT CONSISTENT"
rev_on() { state "$1" | cut -d' ' -f1; }
tenants_on() { curl -s --max-time 5 -H "Authorization: Bearer $(cat "$TOKEN_FILE")" "$(agent_url "$1")/v1/state" | jq -r '.tenants | keys | join(",")'; }
rev_on_is() { [ "$(rev_on "$1")" = "$2" ]; }
all_on() { # REV I...
  local r=$1 i; shift
  for i in "$@"; do [ "$(rev_on "$i")" = "$r" ] || return 1; done
}
call() { scripts/fleet.sh call "$NAME" "$1" "$2" "$3" 2>/dev/null || echo "no answer"; }

ACME=127.51.100.20     # acme's allowed network in the loopback copy
OTHER=127.0.0.9        # no tenant's source
ALLOWED=+12125550100   # national: allowed by acme
DENIED=+12129761234    # the 976 pay-per-call exchange: denied by acme
NEW2=+12135550100      # national under r1, denied by the prefix 1213 added in r2
NEW4=+12145550100      # national until the prefix 1214 is denied

# check_calls I REVISION_KIND: the policy through SBC I
#   base: allowed 200, 976 denied, unknown source denied, 1213 allowed
#   r2:   like base but 1213 denied with dst:prefix:1213
check_calls() {
  local i=$1 kind=$2 got
  got=$(call "$i" $ACME $ALLOWED)
  check "SBC $i ($kind): acme -> $ALLOWED allowed: $got" [ "$got" = "200 dst:national" ]
  got=$(call "$i" $ACME $DENIED)
  check "SBC $i ($kind): acme -> $DENIED denied: $got" bash -c "[[ '$got' == '403 dst:'* ]]"
  got=$(call "$i" $OTHER $ALLOWED)
  check "SBC $i ($kind): unknown source denied: $got" [ "$got" = "403 src:unknown" ]
  got=$(call "$i" $ACME $NEW2)
  case $kind in
    base) check "SBC $i ($kind): acme -> $NEW2 allowed (no 1213 rule yet): $got" [ "$got" = "200 dst:national" ] ;;
    *) check "SBC $i ($kind): acme -> $NEW2 denied by the new rule: $got" [ "$got" = "403 dst:prefix:1213" ] ;;
  esac
}

# --- inputs -------------------------------------------------------------------
say "the acme example compiled to a TollPolicy, with its loopback copy as spec.policy"
"$HELPER" prepare examples/policies "$WORK/agree" --seed "${TG_AGREE_SEED:-20260101}" >/dev/null
"$TG" compile examples/policies --namespace placeholder --fleet edge --output "$WORK/compiled" >/dev/null
template() { grep -l "^  tenant: $1\$" "$WORK"/compiled/*.yaml | head -1; }
loopback() { grep -l "^tenant: $1\$" "$WORK"/agree/fleet/* | head -1; }
for t in acme globex; do
  [ -n "$(template $t)" ] && [ -n "$(loopback $t)" ] || die "no $t TollPolicy or loopback copy"
done
"$PY" - "$WORK/agree/geo.txt" "$WORK/geo.mmdb" <<'PY'
import sys
from mmdb_writer import MMDBWriter
from netaddr import IPSet
geo, mmdb = sys.argv[1:3]
w = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoIP2-Country",
               languages=["en"], description="tollgate operator test geo")
for line in open(geo):
    net, cc = line.split()
    w.insert_network(IPSet([net]), {"country": {"iso_code": cc, "names": {"en": cc}}})
w.to_db_file(mmdb)
PY
export TG_GEOIP_DB=$WORK/geo.mmdb
# mkpolicy NS OUT [ARGS...] (--deny P, --canary N, --bake S, --batch N; fleet "edge")
mkpolicy() { local ns=$1 out=$2; shift 2; $H policy "$(template acme)" "$(loopback acme)" "$out" --namespace "$ns" --fleet edge "$@"; }
mkglobex() { local ns=$1 out=$2; shift 2; $H policy "$(template globex)" "$(loopback globex)" "$out" --namespace "$ns" --fleet edge "$@"; }

say "CRDs"
kubectl apply --server-side --force-conflicts -f crds/ >/dev/null
kubectl wait --for=condition=Established --timeout=30s -f crds/ >/dev/null

say "a fleet of 4 local SBCs on $NET.1-4 (agents on port 9180)"
scripts/fleet.sh start "$NAME" 4
check "fleet: every part up" scripts/fleet.sh status "$NAME"

token_secret() { # NS
  kubectl create secret generic agent-token -n "$1" --from-file=token="$TOKEN_FILE" >/dev/null
}
static_fleet() { apply_static_fleet "$1" 9180 "$NET.1" "$NET.2" "$NET.3"; } # NS: SbcFleet edge, SBCs 1-3

##############################################################################
say "1. static endpoints: revision 1 rolls out to SBCs 1-3"
NS=$(new_ns static)
token_secret "$NS"
static_fleet "$NS"
op_start "$NS" op-static
OPS_PID=$OP_PID
OPS_METRICS=$OP_METRICS
ready_200() { [ "$(curl -s --max-time 2 -o /dev/null -w '%{http_code}' "$1/readyz")" = 200 ]; }
if wait_until 30 ready_200 "$OPS_METRICS"; then ok "operator running, /readyz 200 after ${WAITED} s"; else bad "operator /readyz: $(curl -s --max-time 2 "$OPS_METRICS/readyz")"; fi
mkpolicy "$NS" "$WORK/r1.yaml" --canary 1 --bake 0 --batch 1
t=$(now)
kubectl apply -f "$WORK/r1.yaml" >/dev/null
if wait_until 90 applied_rev "$NS" 1 3/3; then
  ok "phase Applied, applied 3/3, revision 1 after ${WAITED} s"
else
  bad "revision 1 not Applied 3/3 after ${WAITED} s: $(status_line "$NS")"
fi
check "finalizer tollgate.dev/cleanup set" [ "$(tp "$NS" '.metadata.finalizers[0]')" = tollgate.dev/cleanup ]
check "status.lastGoodRevision 1" [ "$(tp "$NS" .status.lastGoodRevision)" = 1 ]
check "status.observedGeneration = metadata.generation" [ "$(tp "$NS" .status.observedGeneration)" = "$(tp "$NS" .metadata.generation)" ]
for c in Compiled Validated Applied; do
  check "condition $c True" [ "$(tp "$NS" ".status.conditions[?(@.type==\"$c\")].status")" = True ]
done
REV1=$(kubectl get policyrevisions -n "$NS" -o jsonpath='{.items[0].metadata.name}')
HASH1=$(kubectl get policyrevisions -n "$NS" -o jsonpath='{.items[0].spec.hash}')
check "PolicyRevision $REV1 named <policy>-<hash10>" [ "$REV1" = "acme-${HASH1:7:10}" ]
check "PolicyRevision owned by the TollPolicy" [ "$(kubectl get policyrevision "$REV1" -n "$NS" -o jsonpath='{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}')" = TollPolicy/acme ]
for i in 1 2 3; do
  label=$(curl -s --max-time 5 -H "Authorization: Bearer $(cat "$TOKEN_FILE")" "$(agent_url $i)/v1/state" | jq -r '.tenants.acme.revision')
  check "SBC $i: GET /v1/state revision $label" [ "$label" = "1@$HASH1" ]
  check "SBC $i: consistent" [ "$(state $i | cut -d' ' -f3)" = true ]
  check_calls "$i" base
done
check "SBC 4 (not in the fleet) untouched: $(rev_on 4)" rev_on_is 4 -
# two-phase applies (docs/operator.md): each SBC was staged revision 1, then
# committed it; no PUT
agent_metric() { # I NAME: a sample of the agent's /metrics (0 when absent)
  curl -s --max-time 5 -H "Authorization: Bearer $(cat "$TOKEN_FILE")" "$(agent_url "$1")/metrics" |
    awk -v m="$2" '$1 == m { print $2; f = 1 } END { if (!f) print 0 }'
}
op_calls() { # METRICS_URL CALL RESULT: the operator's count of agent calls (0 when absent)
  curl -s --max-time 5 "$1/metrics" |
    awk -v m="tollgate_operator_agent_calls_total{call=\"$2\",result=\"$3\"}" '$1 == m { print $2; f = 1 } END { if (!f) print 0 }'
}
for i in 1 2 3; do
  check "SBC $i: tollgate_agent_stages_total $(agent_metric $i tollgate_agent_stages_total) (revision 1 staged once)" [ "$(agent_metric $i tollgate_agent_stages_total)" = 1 ]
done
check "SBC 4: nothing staged: $(agent_metric 4 tollgate_agent_stages_total)" [ "$(agent_metric 4 tollgate_agent_stages_total)" = 0 ]
check "operator: 3 stages ok, 3 commits ok, no PUT: $(op_calls "$OPS_METRICS" stage ok)/$(op_calls "$OPS_METRICS" commit ok)/$(op_calls "$OPS_METRICS" apply ok)" \
  [ "$(op_calls "$OPS_METRICS" stage ok)/$(op_calls "$OPS_METRICS" commit ok)/$(op_calls "$OPS_METRICS" apply ok)" = 3/3/0 ]

##############################################################################
say "2. kubectl get tollpolicies / events"
kubectl get tollpolicies -n "$NS" | tee "$WORK/get.txt"
check "columns NAME TENANT REVISION PHASE APPLIED AGE" \
  bash -c "head -1 '$WORK/get.txt' | grep -Eq '^NAME +TENANT +REVISION +PHASE +APPLIED +AGE *$'"
check "row: acme acme 1 Applied 3/3" bash -c "sed -n 2p '$WORK/get.txt' | grep -Eq '^acme +acme +1 +Applied +3/3 +[0-9]+s'"
kubectl get events -n "$NS" --sort-by=.metadata.creationTimestamp | tee "$WORK/events1.txt"
for r in RollingOut Canary RolloutComplete; do
  check "event reason $r" grep -q " $r " "$WORK/events1.txt"
done
check "events name tollpolicy/acme" grep -q "tollpolicy/acme" "$WORK/events1.txt"

##############################################################################
say "3. revision 2 (deny 1213) in steps: canary 1, bake 4 s, batch 1"
mkpolicy "$NS" "$WORK/r2.yaml" --deny 1213 --canary 1 --bake 4 --batch 1
$H sample "$NS" acme "$TOKEN_FILE" acme 0.3 90 2 "$WORK/steps2.tsv" "$(agent_url 1)" "$(agent_url 2)" "$(agent_url 3)" &
SAMPLER=$!
t=$(now)
kubectl apply -f "$WORK/r2.yaml" >/dev/null
if wait "$SAMPLER"; then ok "revision 2 Applied on 3/3 after $(elapsed "$t") s ($(wc -l < "$WORK/steps2.tsv") samples)"; else bad "revision 2 not applied everywhere within 90 s: $(status_line "$NS")"; fi
if $H steps "$WORK/steps2.tsv" 1 2 4 > "$WORK/steps2.txt"; then
  ok "steps canary (1 new, 2 old) -> batch (2 new, 1 old) -> all, each >= the bake:"
else
  bad "rollout steps wrong:"
fi
cat "$WORK/steps2.txt"
kubectl get events -n "$NS" --sort-by=.metadata.creationTimestamp > "$WORK/events2.txt"
check "event reason Baking" grep -q " Baking " "$WORK/events2.txt"
check "lastGoodRevision 2" [ "$(tp "$NS" .status.lastGoodRevision)" = 2 ]
check "2 PolicyRevisions kept" [ "$(kubectl get policyrevisions -n "$NS" -o name | wc -l)" = 2 ]
for i in 1 2 3; do check_calls "$i" r2; done

##############################################################################
say "4a. a canary that cannot apply (its Kamailio is down): rolled back"
# SBC 1 is the canary (targets are taken in id order: $NET.1:9180 first)
scripts/fleet.sh part "$NAME" 1 kamailio stop
mkpolicy "$NS" "$WORK/r3.yaml" --deny 1213 --deny 1214 --canary 1 --bake 2 --batch 1
t=$(now)
kubectl apply -f "$WORK/r3.yaml" >/dev/null
if wait_until 90 phase_is "$NS" RolledBack; then
  ok "phase RolledBack after ${WAITED} s"
else
  bad "not RolledBack after ${WAITED} s: $(status_line "$NS")"
fi
check "condition RolledBack True" [ "$(tp "$NS" '.status.conditions[?(@.type=="RolledBack")].status')" = True ]
reason=$(tp "$NS" .status.lastRollbackReason)
check "lastRollbackReason: $reason" bash -c "[ -n \"\$1\" ] && [[ \"\$1\" == *'rolling back to'* ]]" _ "$reason"
check "currentRevision 3, lastGoodRevision 2" [ "$(tp "$NS" .status.currentRevision)/$(tp "$NS" .status.lastGoodRevision)" = 3/2 ]
kubectl get events -n "$NS" --sort-by=.metadata.creationTimestamp > "$WORK/events3.txt"
check "Warning event ApplyFailed" grep -Eq 'Warning +ApplyFailed ' "$WORK/events3.txt"
grep -E 'ApplyFailed' "$WORK/events3.txt" | tail -2
check "SBCs 2 and 3 never got revision 3: on 2" all_on 2 2 3
scripts/fleet.sh part "$NAME" 1 kamailio start
# the agent notices its Kamailio came back empty and re-applies what it holds (revision 2)
if wait_until 30 all_on 2 1; then ok "SBC 1 consistent on revision 2 again ${WAITED} s after its Kamailio restarted"; else bad "SBC 1 not back on revision 2: $(state 1)"; fi
sleep 1
for i in 1 2 3; do check_calls "$i" r2; done
got=$(call 1 $ACME $NEW4)
check "SBC 1: revision 3's 1214 rule not in force: $got" [ "$got" = "200 dst:national" ]

say "4b. a non-canary agent stopped mid-rollout: halted (Degraded), resumes when it returns"
mkpolicy "$NS" "$WORK/r4.yaml" --deny 1213 --deny 1215 --canary 1 --bake 3 --batch 1
t=$(now)
kubectl apply -f "$WORK/r4.yaml" >/dev/null
# stop SBC 3's agent as soon as the batch (SBC 2) has revision 4
if wait_until 60 all_on 4 1 2; then ok "canary and batch 1 on revision 4 after ${WAITED} s"; else bad "SBCs 1-2 not on revision 4: $(status_line "$NS")"; fi
scripts/fleet.sh part "$NAME" 3 agent stop
stopped_at=$(now)
if wait_until 60 phase_is "$NS" Degraded; then ok "phase Degraded ${WAITED} s after SBC 3's agent stopped"; else bad "not Degraded: $(status_line "$NS")"; fi
ftarget=$(tp "$NS" '.status.failures[0].target')
freason=$(tp "$NS" '.status.failures[0].reason')
fmsg=$(tp "$NS" '.status.failures[0].message')
check "status.failures names $NET.3:9180: $ftarget ($freason: ${fmsg:0:80})" [ "$ftarget" = "$NET.3:9180" ]
check "failure reason set" [ -n "$freason" ]
check "condition Degraded True" [ "$(tp "$NS" '.status.conditions[?(@.type=="Degraded")].status')" = True ]
check "applied 2/3 while halted: $(tp "$NS" .status.applied)" [ "$(tp "$NS" .status.applied)" = 2/3 ]
kubectl get events -n "$NS" --sort-by=.metadata.creationTimestamp > "$WORK/events4.txt"
check "Warning event TargetsUnreachable" grep -Eq 'Warning +TargetsUnreachable ' "$WORK/events4.txt"
for i in 1 2; do
  got=$(call "$i" $ACME +12155550100)
  check "SBC $i keeps revision 4 (1215 denied): $got" [ "$got" = "403 dst:prefix:1215" ]
done
got=$(call 3 $ACME +12155550100)
check "SBC 3 (agent down) keeps revision 2 (1215 allowed): $got" [ "$got" = "200 dst:national" ]
sleep 2
check "still Degraded while the agent is down ($(elapsed "$stopped_at") s)" phase_is "$NS" Degraded
scripts/fleet.sh part "$NAME" 3 agent start
t=$(now)
if wait_until 120 applied_rev "$NS" 4 3/3; then ok "Applied 3/3 on revision 4 ${WAITED} s after the agent returned (retry with backoff)"; else bad "not Applied after the agent returned: $(status_line "$NS")"; fi
check "failures cleared" [ -z "$(tp "$NS" '.status.failures[*].target')" ]
check "SBC 3 on revision 4" rev_on_is 3 4
got=$(call 3 $ACME +12155550100)
check "SBC 3: 1215 denied now: $got" [ "$got" = "403 dst:prefix:1215" ]

##############################################################################
say "8. deleting a TollPolicy removes its tenant from every SBC (finalizer)"
# a second tenant on the same fleet, so that both cases are seen: removing a
# tenant while another stays, then removing the last one
mkglobex "$NS" "$WORK/g1.yaml" --bake 0
kubectl apply -f "$WORK/g1.yaml" >/dev/null
gl_applied() { [ "$(kubectl get tollpolicy globex -n "$NS" -o jsonpath='{.status.phase} {.status.applied}' 2>/dev/null)" = "Applied 3/3" ]; }
if wait_until 60 gl_applied; then ok "second tenant globex Applied 3/3 after ${WAITED} s"; else bad "globex not Applied: $(kubectl get tollpolicy globex -n "$NS" -o jsonpath='{.status.phase} {.status.applied}')"; fi
gone() { ! kubectl get tollpolicy "$1" -n "$NS" >/dev/null 2>&1; }
kubectl delete tollpolicy acme -n "$NS" --wait=false >/dev/null
if wait_until 60 gone acme; then ok "8a. TollPolicy acme gone ${WAITED} s after the delete (finalizer removed)"; else bad "8a. TollPolicy acme still there: $(tp "$NS" .metadata.finalizers)"; fi
for i in 1 2 3; do
  check "SBC $i: only globex left: $(tenants_on "$i")" [ "$(tenants_on "$i")" = globex ]
  got=$(call "$i" $ACME $ALLOWED)
  check "SBC $i: acme's source now unknown: $got" [ "$got" = "403 src:unknown" ]
done
check "acme's PolicyRevisions deleted" [ -z "$(kubectl get policyrevisions -n "$NS" -o jsonpath='{.items[?(@.spec.policyName=="acme")].metadata.name}')" ]
kubectl delete tollpolicy globex -n "$NS" --wait=false >/dev/null
if wait_until 60 gone globex; then ok "8b. the last tenant's TollPolicy (globex) gone ${WAITED} s after the delete"; else bad "8b. TollPolicy globex (the last tenant) still there after ${WAITED} s: $(grep -a 'failed to clean up' "$WORK/op-op-static.log" | tail -1 | sed 's/\x1b\[[0-9;]*m//g' | grep -o 'cleanup: .*' | cut -c1-200)"; fi
for i in 1 2 3; do check "SBC $i: no tenant left: '$(tenants_on "$i")'" [ -z "$(tenants_on "$i")" ]; done
check "no PolicyRevision left" [ "$(kubectl get policyrevisions -n "$NS" -o name | wc -l)" = 0 ]
curl -s --max-time 2 "$OPS_METRICS/metrics" > "$WORK/metrics-static.txt" || true
check "operator /metrics counts reconciles" grep -q '^tollgate_operator_reconcile' "$WORK/metrics-static.txt"
op_stop "$OPS_PID"

# fresh_fleet: the next group starts from SBCs without acme. A deletion that
# worked left none; otherwise (a failure reported above) the fleet is restarted
# empty so that one failure does not cascade into the next scenarios.
fresh_fleet() {
  local i dirty=
  for i in 1 2 3 4; do [ -z "$(tenants_on "$i")" ] || dirty+=" $i"; done
  [ -z "$dirty" ] && return 0
  echo "  (SBCs$dirty still hold a tenant: restarting the fleet empty)"
  scripts/fleet.sh stop "$NAME" 2>/dev/null
  scripts/fleet.sh start "$NAME" 4 >/dev/null
}

##############################################################################
fresh_fleet
say "5. a pod-selector fleet: Pods made Ready as a kubelet would"
NS=$(new_ns pods)
token_secret "$NS"
kubectl apply -n "$NS" -f - >/dev/null <<EOF
apiVersion: tollgate.dev/v1alpha1
kind: SbcFleet
metadata:
  name: edge
spec:
  selector:
    matchLabels: {app: sbc}
  agentPort: 9180
  agentTokenSecret: {name: agent-token, key: token}
EOF
pod() { # NAME: a Pod labelled app=sbc (Pending: nothing runs it)
  kubectl apply -n "$NS" -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: $1
  labels: {app: sbc}
spec:
  containers:
    - name: sbc
      image: registry.invalid/tollgate-sbc:test
EOF
}
pod_ready() { # NAME IP: what the kubelet would report
  kubectl patch pod "$1" -n "$NS" --subresource=status --type=merge -p "{\"status\":{\"phase\":\"Running\",\"podIP\":\"$2\",\"podIPs\":[{\"ip\":\"$2\"}],\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}]}}" >/dev/null
}
for i in 1 2 3; do pod sbc-$i; pod_ready sbc-$i "$NET.$i"; done
pod sbc-4 # created, not scheduled yet: no IP
op_start "$NS" op-pods
OPP_PID=$OP_PID
mkpolicy "$NS" "$WORK/p1.yaml" --canary 1 --bake 0 --batch 1
kubectl apply -f "$WORK/p1.yaml" >/dev/null
if wait_until 90 applied_rev "$NS" 1 3/3; then ok "revision 1 Applied 3/3 on pods sbc-1..3 after ${WAITED} s"; else bad "not Applied 3/3: $(status_line "$NS")"; fi
for i in 1 2 3; do check "SBC $i (pod sbc-$i) on revision 1" rev_on_is "$i" 1; done
check "SBC 4 (pod without IP) untouched" rev_on_is 4 -
for i in 1 3; do check_calls "$i" base; done
t=$(now)
pod_ready sbc-4 "$NET.4"
if wait_until 30 rev_on_is 4 1; then ok "new Ready pod sbc-4 got revision 1 ${WAITED} s after its Ready status"; else bad "sbc-4 did not get revision 1: $(state 4)"; fi
if wait_until 20 applied_rev "$NS" 1 4/4; then ok "applied 4/4"; else bad "not 4/4: $(status_line "$NS")"; fi
check_calls 4 base

say "5b. a terminating pod is skipped"
kubectl patch pod sbc-2 -n "$NS" --type merge -p '{"metadata":{"finalizers":["tollgate.test/hold"]}}' >/dev/null
kubectl delete pod sbc-2 -n "$NS" --wait=false >/dev/null
check "sbc-2 has a deletionTimestamp" [ -n "$(kubectl get pod sbc-2 -n "$NS" -o jsonpath='{.metadata.deletionTimestamp}')" ]
mkpolicy "$NS" "$WORK/p2.yaml" --deny 1213 --canary 1 --bake 0 --batch 1
kubectl apply -f "$WORK/p2.yaml" >/dev/null
if wait_until 90 applied_rev "$NS" 2 3/3; then ok "revision 2 Applied 3/3 (the terminating pod not counted) after ${WAITED} s"; else bad "revision 2 not Applied 3/3: $(status_line "$NS")"; fi
for i in 1 3 4; do check "SBC $i on revision 2" rev_on_is "$i" 2; done
check "SBC 2 (terminating pod) skipped: still revision $(rev_on 2)" rev_on_is 2 1
check_calls 3 r2
kubectl patch pod sbc-2 -n "$NS" --type merge -p '{"metadata":{"finalizers":null}}' >/dev/null
wait_until 10 bash -c "! kubectl get pod sbc-2 -n '$NS' >/dev/null 2>&1" || true
say "5c. the pod recreated (a restarted SBC pod) gets the current revision at once"
pod sbc-2
pod_ready sbc-2 "$NET.2"
if wait_until 30 rev_on_is 2 2; then ok "recreated pod sbc-2 got revision 2 ${WAITED} s after its Ready status"; else bad "sbc-2 not on revision 2: $(state 2)"; fi
if wait_until 20 applied_rev "$NS" 2 4/4; then ok "applied 4/4"; else bad "not 4/4: $(status_line "$NS")"; fi
kubectl delete tollpolicy acme -n "$NS" --wait=false >/dev/null
gone_p() { ! kubectl get tollpolicy acme -n "$NS" >/dev/null 2>&1; }
if wait_until 60 gone_p; then ok "deleted; tenant removed from the 4 pods' SBCs: $(for i in 1 2 3 4; do rev_on $i; done | tr '\n' ' ')"; else bad "TollPolicy not gone"; fi
check "no SBC holds acme" all_on - 1 2 3 4
op_stop "$OPP_PID"

##############################################################################
fresh_fleet
say "6. the operator SIGKILLed during a bake resumes"
NS=$(new_ns restart)
token_secret "$NS"
static_fleet "$NS"
op_start "$NS" op-restart
BAKE=8
mkpolicy "$NS" "$WORK/k1.yaml" --canary 1 --bake $BAKE
kubectl apply -f "$WORK/k1.yaml" >/dev/null
if wait_until 60 rev_on_is 1 1; then ok "canary SBC 1 on revision 1 after ${WAITED} s"; else bad "canary not applied: $(status_line "$NS")"; fi
canary_at=$(state 1 | cut -d' ' -f2)
has_bake_until() { [ -n "$(tp "$NS" .status.rollout.bakeUntil)" ]; }
wait_until 5 has_bake_until || true
bake_until=$(tp "$NS" .status.rollout.bakeUntil)
ph=$(tp "$NS" .status.phase)
kill -KILL "$OP_PID"
killed=$(now)
check "SIGKILL during the bake (phase $ph, bakeUntil $bake_until persisted, SBCs 2/3: $(rev_on 2)/$(rev_on 3))" \
  bash -c "[ '$ph' = Canary ] && [ -n '$bake_until' ] && [ '$(rev_on 2)' = - ] && [ '$(rev_on 3)' = - ]"
sleep 3   # down for 3 s of the 8 s bake
restarted=$(now)
op_start "$NS" op-restart
if wait_until 60 applied_rev "$NS" 1 3/3; then ok "restarted operator completed the rollout, Applied 3/3 $(elapsed "$killed") s after the kill"; else bad "not completed after the restart: $(status_line "$NS")"; fi
check "canary not re-applied: SBC 1 appliedAt unchanged ($canary_at)" [ "$(state 1 | cut -d' ' -f2)" = "$canary_at" ]
check "SBCs 2 and 3 on revision 1" all_on 1 2 3
# when did the next step start? the operator's own Event (events.k8s.io eventTime, microseconds)
step2=$(kubectl get events.v1.events.k8s.io -n "$NS" -o json | jq -r '[.items[] | select(.note | test("step 2 started")) | .eventTime][0] // empty')
read -r vs_bake vs_restart < <("$PY" -c 'import sys
from datetime import datetime
e = datetime.fromisoformat(sys.argv[1].replace("Z", "+00:00")).timestamp()
print(f"{e - float(sys.argv[2]):.1f} {e - float(sys.argv[3]):.1f}")' "${step2:-1970-01-01T00:00:00Z}" "${bake_until:-0}" "$restarted")
# The restarted operator first waits for the killed one's Lease to expire
# (15 s), so measure from the moment it became the leader: resumed = the
# batch starts at once (the persisted bake is over by then), a restarted bake
# would start >= BAKE s after.
leader_at=$(grep 'became the leader' "$WORK/op-op-restart.log" | tail -1 | cut -d' ' -f1)
vs_leader=$("$PY" -c 'import sys
from datetime import datetime
t = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
print(f"{t(sys.argv[1]) - t(sys.argv[2]):.1f}")' "${step2:-1970-01-01T00:00:00Z}" "${leader_at:-1970-01-01T00:00:00Z}")
check "batch started ${vs_bake} s after the persisted bakeUntil, ${vs_leader} s after the restarted operator became the leader (${vs_restart} s after the restart; a restarted bake would be >= $BAKE s after the leader)" \
  awk -v a="$vs_bake" -v l="$vs_leader" -v b=$BAKE 'BEGIN { exit !(a >= -1 && l >= 0 && l < b - 1) }'
kubectl delete tollpolicy acme -n "$NS" --wait=false >/dev/null
wait_until 60 bash -c "! kubectl get tollpolicy acme -n '$NS' >/dev/null 2>&1" || bad "restart scenario: TollPolicy not deleted"
op_stop "$OP_PID"

##############################################################################
fresh_fleet
say "7. two replicas, one Lease"
NS=$(new_ns leader)
token_secret "$NS"
static_fleet "$NS"
op_start "$NS" op-a
A_PID=$OP_PID A_METRICS=$OP_METRICS
holder() { kubectl get lease tollgate-operator -n "$NS" -o jsonpath='{.spec.holderIdentity}' 2>/dev/null; }
holder_is() { [ "$(holder)" = "$1" ]; }
wait_until 20 holder_is op-a || true
op_start "$NS" op-b
B_PID=$OP_PID B_METRICS=$OP_METRICS
kubectl get lease -n "$NS" | tee "$WORK/lease.txt"
check "Lease tollgate-operator held by op-a" holder_is op-a
mkpolicy "$NS" "$WORK/l1.yaml" --canary 1 --bake 0 --batch 1
kubectl apply -f "$WORK/l1.yaml" >/dev/null
if wait_until 90 applied_rev "$NS" 1 3/3; then ok "revision 1 Applied 3/3 after ${WAITED} s"; else bad "not Applied: $(status_line "$NS")"; fi
check "only op-a reported events" bash -c "[ \"\$(kubectl get events -n '$NS' -o jsonpath='{range .items[*]}{.reportingInstance}{\"\\n\"}{end}' | sort -u | tr '\n' ' ')\" = 'op-a ' ]"
check "op-b started no controller" bash -c "! grep -q 'became the leader' '$WORK/op-op-b.log'"
leader_metric() { curl -s --max-time 2 "$1/metrics" | awk '/^tollgate_operator_leader / {print $2}'; }
check "leader gauge: op-a $(leader_metric "$A_METRICS"), op-b $(leader_metric "$B_METRICS")" \
  [ "$(leader_metric "$A_METRICS")/$(leader_metric "$B_METRICS")" = 1/0 ]
b_work() { curl -s --max-time 2 "$B_METRICS/metrics" | awk '/^tollgate_operator_(reconciles|agent_calls)_total/ { n += $NF } END { print n + 0 }'; }
check "op-b made no reconcile and no agent call while standing by: $(b_work)" [ "$(b_work)" = 0 ]
kill -KILL "$A_PID"
killed=$(now)
mkpolicy "$NS" "$WORK/l2.yaml" --deny 1213 --canary 1 --bake 0 --batch 1
kubectl apply -f "$WORK/l2.yaml" >/dev/null
if wait_until 40 holder_is op-b; then ok "op-b holds the Lease $(elapsed "$killed") s after op-a was killed (lease 15 s)"; else bad "op-b did not take the Lease: $(holder)"; fi
if wait_until 60 applied_rev "$NS" 2 3/3; then ok "op-b rolled out revision 2: Applied 3/3 $(elapsed "$killed") s after the kill"; else bad "revision 2 not applied by op-b: $(status_line "$NS")"; fi
check "events of revision 2 reported by op-b" bash -c "kubectl get events -n '$NS' -o jsonpath='{range .items[*]}{.reportingInstance}{\"\\n\"}{end}' | grep -qx op-b"
for i in 1 2 3; do check "SBC $i on revision 2" rev_on_is "$i" 2; done
check_calls 2 r2
kubectl delete tollpolicy acme -n "$NS" --wait=false >/dev/null
wait_until 60 bash -c "! kubectl get tollpolicy acme -n '$NS' >/dev/null 2>&1" || bad "leader scenario: TollPolicy not deleted"
op_stop "$B_PID"
check "op-b released the Lease on SIGTERM" bash -c "[ -z \"\$(kubectl get lease tollgate-operator -n '$NS' -o jsonpath='{.spec.holderIdentity}')\" ]"

##############################################################################
say "9. a tenant with a carrier's deny list of 100,000 ranges: compiled into PolicyChunks, kubectl apply, rolled out, enforced"
NS=$(new_ns big)
token_secret "$NS"
static_fleet "$NS"
op_start "$NS" op-big
BIG=127.51.100.77   # bigdeny's one source (no other tenant's)
mkdir -p "$WORK/big"
"$PY" - "$WORK/big/bigdeny.tgp" "$BIG" <<'PY'
import sys
path, src = sys.argv[1:3]
lines = ["# A carrier's deny list: 100,000 ranges of +1 212.", "tenant bigdeny", "home US",
         "zone America/New_York", "", "destinations {"]
lines += [f"  deny prefix +1 212 {200000 + i}" for i in range(100000)]
lines += ["}", "", "sources {", f"  allow {src}", "}", ""]
open(path, "w").write("\n".join(lines))
PY
t=$(now)
quiet() { "$@" > "$WORK/quiet.log" 2>&1 || { tail -5 "$WORK/quiet.log"; return 1; }; }
check "tollgate compile: $(basename "$WORK/big/bigdeny.tgp") (100,011 lines)" \
  quiet "$TG" compile "$WORK/big/bigdeny.tgp" --namespace "$NS" --fleet edge --output "$WORK/big/out"
BIGYAML=$WORK/big/out/bigdeny.yaml
nchunks=$(grep -c '^kind: PolicyChunk$' "$BIGYAML" || true)
ok "compiled in $(elapsed "$t") s: $(du -h "$BIGYAML" | cut -f1) of YAML, the TollPolicy and $nchunks PolicyChunks"
check "more than one chunk ($nchunks)" [ "$nchunks" -gt 1 ]
t=$(now)
check "kubectl apply -f (client-side, as a GitOps tool would)" quiet kubectl apply -f "$BIGYAML"
ok "applied in $(elapsed "$t") s"
check "$nchunks PolicyChunks in $NS" [ "$(kubectl get policychunks -n "$NS" -o name | wc -l)" = "$nchunks" ]
bigtp() { kubectl get tollpolicy bigdeny -n "$NS" -o jsonpath="{$1}" 2>/dev/null; }
big_applied() { [ "$(bigtp .status.phase)" = Applied ] && [ "$(bigtp .status.applied)" = 3/3 ]; }
if wait_until 300 big_applied; then
  ok "bigdeny Applied 3/3 ${WAITED} s after kubectl apply"
else
  bad "bigdeny not Applied after ${WAITED} s: $(bigtp .status.phase) $(bigtp .status.applied) $(bigtp '.status.conditions[?(@.type=="Compiled")].message')"
fi
check "condition Compiled True (assembled from its chunks)" [ "$(bigtp '.status.conditions[?(@.type=="Compiled")].status')" = True ]
BIGHASH=$(bigtp .spec.parts.hash)
for i in 1 2 3; do
  label=$(curl -s --max-time 5 -H "Authorization: Bearer $(cat "$TOKEN_FILE")" "$(agent_url $i)/v1/state?tenant=bigdeny" | jq -r '.tenants.bigdeny.revision')
  check "SBC $i holds bigdeny 1@<spec.parts.hash>: $label" [ "$label" = "1@$BIGHASH" ]
  for n in +12122000005 +12122500001 +12122999999; do
    got=$(call "$i" $BIG $n)
    check "SBC $i: bigdeny -> $n (in the list) denied: $got" bash -c "[[ '$got' == '403 dst:prefix:'* ]]"
  done
  got=$(call "$i" $BIG +12125550100)
  check "SBC $i: bigdeny -> +12125550100 (not in the list) allowed: $got" [ "$got" = "200 dst:national" ]
  got=$(call "$i" $BIG +12123000000)
  check "SBC $i: bigdeny -> +12123000000 (just past the list) allowed: $got" [ "$got" = "200 dst:national" ]
done
kubectl delete tollpolicy bigdeny -n "$NS" --wait=false >/dev/null
wait_until 120 bash -c "! kubectl get tollpolicy bigdeny -n '$NS' >/dev/null 2>&1" || bad "bigdeny not deleted"

##############################################################################
say "10. six tenants changed together (a base change): each SBC gets them in batches, enforced"
NS=$(new_ns batch)
token_secret "$NS"
static_fleet "$NS"
op_start "$NS" op-batch
mkdir -p "$WORK/batch"
# mktenants DIR [EXTRA_DENY]: six tenants b1..b6, each its own source
mktenants() {
  "$PY" - "$1" "${2:-}" <<'PY'
import sys
out, extra = sys.argv[1:3]
for i in range(1, 7):
    deny = ["  deny prefix +1 212 976"] + ([f"  deny prefix {extra}"] if extra else [])
    lines = [f"tenant b{i}", "home US", "zone America/New_York", "", "destinations {", *deny, "}",
             "", "sources {", f"  allow 127.51.101.{i}", "}", ""]
    open(f"{out}/b{i}.tgp", "w").write("\n".join(lines))
PY
}
batch_calls() { curl -s --max-time 2 "$OP_METRICS/metrics" | awk '/^tollgate_operator_agent_calls_total\{call="batch",result="ok"\}/ { print $2 }'; }
all_b_applied() { # GENERATION
  local i
  for i in 1 2 3 4 5 6; do
    [ "$(kubectl get tollpolicy "b$i" -n "$NS" -o jsonpath='{.status.phase} {.status.applied} {.status.observedGeneration}' 2>/dev/null)" = "Applied 3/3 $1" ] || return 1
  done
}
mkdir -p "$WORK/batch/src1" "$WORK/batch/src2"
mktenants "$WORK/batch/src1"
mktenants "$WORK/batch/src2" "+1 213"
for v in 1 2; do
  check "tollgate compile: six tenants (version $v)" quiet "$TG" compile "$WORK/batch/src$v" --namespace "$NS" --fleet edge --output "$WORK/batch/out$v"
done
check "kubectl apply -f: six TollPolicies" quiet kubectl apply -f "$WORK/batch/out1"
if wait_until 120 all_b_applied 1; then ok "b1..b6 Applied 3/3 after ${WAITED} s"; else bad "b1..b6 not all Applied after ${WAITED} s"; fi
before=$(batch_calls)
t=$(now)
check "kubectl apply -f: the base change (deny +1 213) to all six at once" quiet kubectl apply -f "$WORK/batch/out2"
if wait_until 120 all_b_applied 2; then ok "b1..b6 Applied 3/3 at generation 2 ${WAITED} s after kubectl apply"; else bad "the base change not Applied after ${WAITED} s"; fi
after=$(batch_calls)
check "the operator sent POST /v1/batch and the SBCs took them (batch calls ok: ${before:-0} -> ${after:-0})" \
  [ "${after:-0}" -gt "${before:-0}" ]
for i in 1 2 3; do
  check "SBC $i holds b1..b6: $(tenants_on "$i")" bash -c "[[ '$(tenants_on "$i")' == *b1,b2,b3,b4,b5,b6* ]]"
  for b in 1 4 6; do
    got=$(call "$i" 127.51.101.$b +12135550100)
    check "SBC $i: b$b -> +12135550100 denied by the base change: $got" [ "$got" = "403 dst:prefix:1213" ]
    got=$(call "$i" 127.51.101.$b +12125550100)
    check "SBC $i: b$b -> +12125550100 allowed: $got" [ "$got" = "200 dst:national" ]
  done
done

##############################################################################
say "12. kubectl tollgate (the plugin, found by kubectl on the PATH): status per SBC, promote, abort, pause, history and its diff, explain"
export PATH=$CARGO_TARGET_DIR/debug:$PATH
KT() { kubectl tollgate "$@"; }
check "kubectl finds the plugin (kubectl plugin list)" bash -c "kubectl plugin list 2>/dev/null | grep -q '/kubectl-tollgate$'"
NS=$(new_ns plugin)
token_secret "$NS"
static_fleet "$NS"
op_start "$NS" op-plugin
OPP_PID=$OP_PID
gstate() { kubectl get tollpolicy globex -n "$NS" -o jsonpath='{.status.phase} {.status.currentRevision} {.status.applied}' 2>/dev/null; }
gstate_is() { [ "$(gstate)" = "$1" ]; }
# kt_py PYTHON ARGS...: PYTHON (over the answer d) of `kubectl tollgate -o json ARGS`
kt_py() { local code=$1; shift; KT -n "$NS" -o json "$@" | "$PY" -c "import json,sys; d=json.load(sys.stdin); print($code)"; }
mkglobex "$NS" "$WORK/p1.yaml" --bake 0
kubectl apply -f "$WORK/p1.yaml" >/dev/null
if wait_until 90 gstate_is "Applied 1 3/3"; then ok "globex revision 1 Applied 3/3 after ${WAITED} s"; else bad "globex not Applied: $(gstate)"; fi
rc=0; KT -n "$NS" status globex > "$WORK/kt-status1.txt" || rc=$?
cat "$WORK/kt-status1.txt"
check "status: exit $rc (Applied: 0)" [ "$rc" = 0 ]
check "status: one row per SBC, revision 1, its hash, consistent, Current" \
  [ "$(grep -cE "^$NET\.[123]:9180 +1 +sha256:[0-9a-f]{12} +yes +Current +-$" "$WORK/kt-status1.txt")" = 3 ]
H1=$(kubectl get policyrevisions -n "$NS" -o jsonpath='{.items[?(@.spec.revision==1)].spec.hash}')
check "status -o json: every target's hash is PolicyRevision 1's" \
  [ "$(kt_py '",".join(sorted(set(t["hash"] for t in d["targets"])))' status globex)" = "$H1" ]

mkglobex "$NS" "$WORK/p2.yaml" --deny 4420 --canary 1 --bake 600 --batch 1
kubectl apply -f "$WORK/p2.yaml" >/dev/null
canary_of() { [ "$(kt_py '" ".join(sorted(str(t["revision"]) + t["state"] for t in d["targets"]))' status globex 2>/dev/null)" = "$1" ]; }
if wait_until 60 canary_of "1Waiting 1Waiting 2Current"; then ok "revision 2: the canary holds it (Current), the other two wait on revision 1 (status.targets)"; else bad "no canary: $(KT -n "$NS" status globex)"; fi
out=$(KT -n "$NS" promote globex)
check "promote: $out" [ "$(tp_of globex .spec.rollout.promoteRevision)" = 2 ]
if wait_until 60 gstate_is "Applied 2 3/3"; then ok "promoted: revision 2 Applied 3/3 ${WAITED} s later (its bake was 600 s)"; else bad "promote did not complete: $(gstate)"; fi
KT -n "$NS" history globex > "$WORK/kt-history.txt"
cat "$WORK/kt-history.txt"
check "history: revisions 1 and 2, 2 current and last good" \
  bash -c "grep -qE '^1 +sha256:' '$WORK/kt-history.txt' && grep -qE '^2 +sha256:.* current, last good$' '$WORK/kt-history.txt'"
rc=0; KT -n "$NS" history globex --diff 1 2 > "$WORK/kt-diff12.txt" || rc=$?
cat "$WORK/kt-diff12.txt"
check "history --diff 1 2: tightens (+44 20 denied), exit $rc (0)" \
  bash -c "[ $rc = 0 ] && grep -qE 'tightens +calls to \+44 20 now denied' '$WORK/kt-diff12.txt'"
rc=0; KT -n "$NS" history globex --diff 2 1 > /dev/null || rc=$?
check "history --diff 2 1: loosens, exit $rc (1)" [ "$rc" = 1 ]

mkglobex "$NS" "$WORK/p3.yaml" --deny 4420 --deny 4421 --canary 1 --bake 600 --batch 1
kubectl apply -f "$WORK/p3.yaml" >/dev/null
if wait_until 60 canary_of "2Waiting 2Waiting 3Current"; then ok "revision 3 on the canary"; else bad "revision 3 not on a canary: $(KT -n "$NS" status globex)"; fi
out=$(KT -n "$NS" abort globex)
check "abort: $out" [ "$(tp_of globex .spec.rollout.abortRevision)" = 3 ]
rolled_back() { [ "$(tp_of globex .status.phase)" = RolledBack ] && canary_of "2Waiting 2Waiting 2Waiting"; }
if wait_until 60 rolled_back; then ok "aborted: RolledBack, every SBC holds revision 2 again ${WAITED} s later"; else bad "abort: $(KT -n "$NS" status globex)"; fi
rc=0; KT -n "$NS" status globex > "$WORK/kt-status3.txt" || rc=$?
check "status of a rolled-back policy: exit $rc (1), says why" bash -c "[ $rc = 1 ] && grep -q '^rolled back: ' '$WORK/kt-status3.txt'"
KT -n "$NS" pause globex >/dev/null && p1=$(tp_of globex .spec.rollout.paused)
KT -n "$NS" resume globex >/dev/null && p2=$(tp_of globex .spec.rollout.paused)
check "pause / resume: spec.rollout.paused $p1 then $p2" [ "$p1/$p2" = true/false ]

GSRC=127.0.2.20   # globex's 192.0.2.0/24 in the loopback copy; GB in the test's GeoIP database
GCC=$(awk -v a="$GSRC/32" '$1 == a { print $2 }' "$WORK/agree/geo.txt")
# agree "CODE RULE" "OUTCOME RULE": the SBC's answer and explain's verdict agree
agree() {
  [ "${1#* }" = "${2#* }" ] || return 1
  if [ "${1%% *}" = 200 ]; then [ "${2%% *}" = allow ]; else [ "${2%% *}" != allow ]; fi
}
for num in +442071234567 +442171234567 +33142000000; do
  got=$(call 1 $GSRC $num)
  ex=$(kt_py 'd["decision"]["outcome"] + " " + d["decision"]["rule"]["id"]' explain globex --to $num --from $GSRC --country "$GCC")
  check "explain agrees with SBC 1 for globex -> $num: explain '$ex', SBC '$got'" agree "$got" "$ex"
done
tls=(--country "$GCC" --transport tls --srtp --client-cert --at 2026-12-08T10:00:00+00:00)
ex2=$(kt_py '" ".join(map(str, (d["revision"], d["decision"]["outcome"], d["decision"]["rule"]["id"])))' explain globex --to +442071234567 --from $GSRC "${tls[@]}")
ex1=$(kt_py '" ".join(map(str, (d["revision"], d["decision"]["outcome"], d["decision"]["rule"]["id"])))' explain globex --to +442071234567 --from $GSRC "${tls[@]}" --revision 1)
check "explain over TLS: the revision in force (2) denies +44 20 ($ex2), revision 1 allowed it ($ex1)" \
  bash -c "[ '$ex2' = '2 deny dst:prefix:4420' ] && [[ '$ex1' == '1 allow '* ]]"
KT -n "$NS" explain globex --to +442071234567 --from $GSRC "${tls[@]}" > "$WORK/kt-explain.txt"
check "explain (text) names the rule and where it was written" grep -q '^rule: *dst:prefix:4420' "$WORK/kt-explain.txt"
err=$(KT -n "$NS" status nosuch 2>&1 >/dev/null; echo "rc=$?")
check "a policy that is not there: exit 2 and says so ($err)" bash -c "[[ '$err' == *'not found in namespace $NS'*'rc=2' ]]"
check "shell completion (bash) for kubectl-tollgate" bash -c "kubectl tollgate completion bash | grep -q kubectl-tollgate"
op_stop "$OPP_PID"

##############################################################################
say "11. least privilege: every request the operators made (audit log) against the chart's rendered RBAC"
for p in "${OP_PIDS[@]}"; do op_stop "$p"; done
if "$PY" scripts/rbac-audit.py "$ROOT" "$AUDIT_LOG" "$AUDIT_FROM" tollgate-operator --self-test > "$WORK/rbac-audit.log" 2>&1; then
  sed -n '/^ *[0-9]\+  /p' "$WORK/rbac-audit.log"
  ok "the operators' requests are all allowed by the chart's Role and ClusterRole, every rule is used or documented, and removing any used rule fails the check: $(tail -1 "$WORK/rbac-audit.log")"
else
  cat "$WORK/rbac-audit.log"
  bad "RBAC audit: $(grep -c FAIL "$WORK/rbac-audit.log") failure(s) (above)"
fi

echo
echo "total $(elapsed "$T0") s"
echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
