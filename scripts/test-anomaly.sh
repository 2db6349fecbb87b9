#!/usr/bin/env bash
# The anomaly loop closed, all real: the testbed API server (CRDs from
# crds/), two local SBCs (scripts/fleet.sh: Kamailio + tollgate-agent) in a
# static SbcFleet, the tollgate-operator binary with its Alertmanager
# webhook, Prometheus scraping both agents (rules from tollgate-rules for
# the tenant, plus one revision rule), Alertmanager posting to the
# operator's /alerts with a bearer token.
#
# 1. Fraud response: SIPp drives international calls above acme's
#    `concurrent international` critical level (a loopback copy of acme
#    with low levels and a declared response `block class international`
#    until acknowledged) -> the rule fires -> Alertmanager posts -> the
#    operator pushes the block to both agents -> international calls get
#    `403 block:class:international` on BOTH SBCs while national calls
#    still get 200; kubectl shows status.activeResponses; `kubectl annotate
#    ... tollgate.dev/release=all` lifts it and international calls pass.
#    The operator then restarts while the alert keeps firing; Alertmanager
#    re-sends it (repeat_interval 2s) to the new process, whose in-memory
#    set of handled alerts is empty: status.acknowledgedAlerts keeps the
#    released block from coming back; a new instance of the alert (a new
#    startsAt) still blocks.
# 2. Rollback: revision 2 wrongly denies national calls; a canary rollout
#    (1 SBC, then a 60 s bake) puts it on SBC 1; national calls there are
#    denied; a rule on those denials joined with
#    tollgate_tenant_revision_info labels the alert with the revision ->
#    Alertmanager -> the operator rolls back (phase RolledBack) -> national
#    calls pass again on every SBC, which hold revision 1. Every revision
#    reached the SBCs staged then committed (agent and operator metrics).
#
#   scripts/test-anomaly.sh
#
# Settings: TG_ANOMALY_NET (default 47: addresses 127.0.47.0/24),
# TOLLGATE_RUN (default /tmp/tollgate-run). Uses the running testbed API
# server or starts one (and stops it only then). Bounded: every wait has a
# count, every curl --max-time, SIPp -timeout and `timeout`.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

scripts/sbc-install.sh
scripts/monitoring-install.sh
ensure_kubectl

RUN=${TOLLGATE_RUN:-/tmp/tollgate-run}
export TOLLGATE_RUN=$RUN
NAME=tganomaly
export TG_FLEET_NET=${TG_ANOMALY_NET:-47}
NET=127.0.$TG_FLEET_NET
OP_IP=$NET.240
WORK=$RUN/$NAME-work
MON=$WORK/monitoring
NS=t-anomaly-$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
PY=$(python_env)
ACME=127.51.100.20     # acme's allowed network in the loopback copy
INTL=+14165550101      # Canada: class international for acme (US)
NATL=+12125550100      # national

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

say "building tollgate-agent, tollgate-operator, tollgate-rules and the agreement helper"
build_all
BIN=$CARGO_TARGET_DIR/debug
export TG_AGENT_BIN=$BIN/tollgate-agent

started_api=0
scripts/apiserver.sh status >/dev/null 2>&1 || started_api=1
eval "$(scripts/apiserver.sh start)"
[ -n "${KUBECONFIG:-}" ] || die "no KUBECONFIG from scripts/apiserver.sh"
K() { kubectl --request-timeout=10s "$@"; }

OP_PID=
LOAD=
cleanup() {
  if [ -n "$LOAD" ]; then kill "$LOAD" 2>/dev/null || true; wait "$LOAD" 2>/dev/null || true; fi
  if [ -n "$OP_PID" ]; then kill "$OP_PID" 2>/dev/null || true; wait "$OP_PID" 2>/dev/null || true; fi
  scripts/monitoring.sh stop "$MON" 2>/dev/null || true
  scripts/fleet.sh stop "$NAME" 2>/dev/null || true
  kubectl --request-timeout=10s delete namespace "$NS" --wait=false >/dev/null 2>&1 || true
  if [ "$started_api" = 1 ]; then scripts/apiserver.sh stop || true; fi
}
trap cleanup EXIT
scripts/monitoring.sh stop "$MON" 2>/dev/null || true
rm -rf "$WORK"
mkdir -p "$WORK" "$MON"

say "CRDs, namespace $NS"
K apply --server-side --force-conflicts -f crds/ >/dev/null
K wait --for=condition=Established --timeout=30s crd/tollpolicies.tollgate.dev crd/sbcfleets.tollgate.dev \
  crd/policyrevisions.tollgate.dev >/dev/null
K create namespace "$NS" >/dev/null

say "a loopback copy of acme: concurrent international warning 2, critical 3 -> block class international"
"$BIN/examples/agreement" prepare examples/policies "$WORK/agree" --seed "${TG_AGREE_SEED:-20260101}" >/dev/null
"$PY" - "$WORK/agree/fleet" "$WORK" "$NS" <<'PY'
import copy, json, os, sys, yaml
src, out, ns = sys.argv[1:4]
for f in sorted(os.listdir(src)):
    p = yaml.safe_load(open(os.path.join(src, f)))
    if p["tenant"] != "acme":
        continue
    # the tenant-wide levels are far above what the test drives: there for
    # the dashboard's limit panels
    p["limits"] = [{"metric": "concurrent", "class": "international", "warning": 2, "critical": 3,
                    "rule": "limit:concurrent:international"},
                   {"metric": "concurrent", "warning": 50, "critical": 100, "rule": "limit:concurrent"},
                   {"metric": "rate", "warning": 500, "critical": 1000, "rule": "limit:rate"}]
    p["responses"] = [{
        "trigger": {"kind": "breach", "metric": "concurrent", "class": "international", "level": "critical"},
        "action": {"kind": "blockClasses", "classes": ["international"]},
        "untilAcknowledged": True,
        "rule": "respond:concurrent:international:critical"}]
    yaml.safe_dump(p, open(os.path.join(out, "acme.yaml"), "w"), sort_keys=False)
    def policy(pol, rollout):
        return {"apiVersion": "tollgate.dev/v1alpha1", "kind": "TollPolicy",
                "metadata": {"name": "acme", "namespace": ns},
                "spec": {"tenant": "acme", "policy": pol, "fleet": {"name": "edge"}, "rollout": rollout}}
    json.dump(policy(p, {"bakeSeconds": 0}), open(os.path.join(out, "policy-1.json"), "w"))
    # revision 2: the national rule denies (the wrong revision)
    bad = copy.deepcopy(p)
    n = 0
    for d in bad["destinations"]:
        if d["rule"] == "dst:national":
            d["action"] = "deny"; n += 1
    assert n, "no dst:national destination in acme"
    json.dump(policy(bad, {"canary": {"count": 1}, "bakeSeconds": 60, "batch": {"count": 1}}),
              open(os.path.join(out, "policy-2.json"), "w"))
PY
[ -f "$WORK/policy-1.json" ] || die "no acme test copy"

say "two SBCs (scripts/fleet.sh), the SbcFleet, the operator"
scripts/fleet.sh start "$NAME" 2 > "$WORK/fleet.out"
sed 's/^/    /' "$WORK/fleet.out"
FTOKEN=$RUN/$NAME/token
SIP1=$(awk -F'\t' -v n="$NAME-1" '$1 == n {print $2}' "$RUN/$NAME/fleet.tsv")
A1=$(awk -F'\t' -v n="$NAME-1" '$1 == n {print $3}' "$RUN/$NAME/fleet.tsv")
A2=$(awk -F'\t' -v n="$NAME-2" '$1 == n {print $3}' "$RUN/$NAME/fleet.tsv")
H1=${A1#http://}; H2=${A2#http://}
K -n "$NS" create secret generic agent-token --from-file=token="$FTOKEN" >/dev/null
cat > "$WORK/fleet.yaml" <<EOF
apiVersion: tollgate.dev/v1alpha1
kind: SbcFleet
metadata: {name: edge, namespace: $NS}
spec:
  backend: kamailio
  agentPort: ${H1##*:}
  agentTokenSecret: {name: agent-token, key: token}
  endpoints:
    - {host: "${H1%:*}", port: ${H1##*:}}
    - {host: "${H2%:*}", port: ${H2##*:}}
EOF
K apply -f "$WORK/fleet.yaml" >/dev/null
head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$WORK/alerts.token"
chmod 600 "$WORK/alerts.token"
TOKEN=$(cat "$WORK/alerts.token")
RX=http://$OP_IP:19443/alerts
start_operator() { # LOG
  RUST_LOG=info,kube=warn "$BIN/tollgate-operator" --namespace "$NS" --no-leader-election \
    --metrics-addr "$OP_IP:18080" --webhook-addr "$OP_IP:19443" --webhook-token-file "$WORK/alerts.token" \
    --identity anomaly-test > "$1" 2>&1 &
  OP_PID=$!
  for i in $(seq 1 100); do curl -s --max-time 1 -o /dev/null "http://$OP_IP:18080/readyz" && break; sleep 0.1; done
}
start_operator "$WORK/operator.log"
check "the operator logs that its webhook listens" grep -q 'alert webhook listening' "$WORK/operator.log"
code=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' -X POST --data '{}' "$RX" || true)
check "the webhook refuses a request without the token: $code" [ "$code" = 401 ]

t0=$(now_ms)
K apply -f "$WORK/policy-1.json" >/dev/null
phase=
for i in $(seq 1 150); do
  phase=$(K -n "$NS" get tollpolicy acme -o jsonpath='{.status.phase}' 2>/dev/null || true)
  [ "$phase" = Applied ] && break
  sleep 0.2
done
check "revision 1 applied to both SBCs: phase $phase in $(( $(now_ms) - t0 )) ms" [ "$phase" = Applied ]

say "rules (tollgate-rules + the revision rule), Prometheus, Alertmanager"
"$BIN/tollgate-rules" --namespace "$NS" --fresh 30s --learning 4s --history 1h "$WORK/acme.yaml" \
  > "$WORK/rules.yml" 2> "$WORK/rules.notes"
cat > "$WORK/revision-rules.yml" <<EOF
groups:
  - name: tollgate-revision-acme
    interval: 1s
    rules:
      - alert: TollgateRevisionDeniesNational
        # national calls denied on a target, labelled with the revision it holds
        expr: |
          label_replace(
            (sum by (tenant, instance) (tollgate_calls_total{tenant="acme",outcome="deny",rule="dst:national"}) > 0)
            * on (tenant, instance) group_left (revision) tollgate_tenant_revision_info{tenant="acme"},
            "tollgate_revision", "\$1", "revision", "(.+)")
        labels:
          severity: critical
          namespace: $NS
          tollgate_policy: acme
        annotations:
          summary: revision {{ \$labels.revision }} denies national calls on {{ \$labels.instance }}
EOF
check "promtool accepts both rule files" promtool check rules "$WORK/rules.yml" "$WORK/revision-rules.yml"
MON_T0=$(date +%s)
scripts/monitoring.sh start "$MON" --target "$H1" --target "$H2" --scrape-token-file "$FTOKEN" \
  --operator-target "$OP_IP:18080" --rules "$WORK/rules.yml" --rules "$WORK/revision-rules.yml" --webhook "$RX" \
  --webhook-token-file "$WORK/alerts.token" --prometheus "$NET.241:9090" --alertmanager "$NET.241:9093" \
  --repeat-interval 2s
PROM=http://$NET.241:9090
AM=http://$NET.241:9093
up=
for i in $(seq 1 50); do
  up=$(prom_value "$PROM" 'sum(up{job="tollgate-agent"})')
  [ "$up" = 2 ] && break
  sleep 0.2
done
check "Prometheus scrapes both agents (up: $up)" [ "$up" = 2 ]
revs=
for i in $(seq 1 50); do
  revs=$(prom_query "$PROM" 'tollgate_tenant_revision_info{tenant="acme"}' | "$PY" -c 'import json,sys; print(",".join(sorted(x["metric"]["revision"] for x in json.load(sys.stdin)["data"]["result"])))')
  [ "$revs" = 1,1 ] && break
  sleep 0.2
done
check "both agents export tollgate_tenant_revision_info revision 1 ($revs)" [ "$revs" = 1,1 ]

call() { scripts/fleet.sh call "$NAME" "$1" "$ACME" "$2" 2>/dev/null || echo "no answer"; }
active() { K -n "$NS" get tollpolicy acme -o jsonpath='{.status.activeResponses}' 2>/dev/null || true; }
# release: a person's acknowledgement (`kubectl tollgate release`: the
# annotation), then up to 20 s for the operator to clear activeResponses and
# remove the annotation; leaves what it saw last in $ar and $ann
KT() { PATH=$BIN:$PATH kubectl tollgate --request-timeout=10s "$@"; }
release() {
  KT -n "$NS" release acme --all >/dev/null
  local i
  for i in $(seq 1 100); do
    ar=$(active); ann=$(K -n "$NS" get tollpolicy acme -o jsonpath='{.metadata.annotations.tollgate\.dev/release}' 2>/dev/null || true)
    [ -z "$ar" ] && [ -z "$ann" ] && return 0
    sleep 0.2
  done
}

say "1. fraud: international calls on SBC 1 above the critical level (3)"
for i in 1 2; do
  got=$(call $i $INTL); check "SBC $i before: international $got" [ "${got%% *}" = 200 ]
done
: > "$WORK/intl.csv"; echo SEQUENTIAL >> "$WORK/intl.csv"
for i in 1 2 3 4 5 6 7 8; do echo "+1416555010$i;RTP/AVP" >> "$WORK/intl.csv"; done
t0=$(now_ms)
timeout 60 sipp "$SIP1" -sf sbc/sipp/uac.xml -inf "$WORK/intl.csv" -i "$ACME" -p 0 -t u1 -m 8 -l 8 -r 8 \
  -d 8000 -nostdin -timeout 40s -trace_logs -log_file "$WORK/intl.log" > /dev/null 2>&1 &
LOAD=$!
ar=
for i in $(seq 1 150); do
  ar=$(active)
  case $ar in *respond:concurrent:international:critical*) break ;; esac
  sleep 0.2
done
t_status=$(now_ms)
check "the declared response is in status.activeResponses $((t_status - t0)) ms after the load started" \
  grep -q 'respond:concurrent:international:critical' <<< "$ar"
check "  ... until acknowledged, with the alert's name and fingerprint ($ar)" "$PY" -c '
import json,sys; a=json.loads(sys.argv[1])[0]
sys.exit(0 if a["untilAcknowledged"] and a["action"]=={"kind":"blockClasses","classes":["international"]} and a["alert"]["name"] and a["alert"]["fingerprint"] else 1)' "$ar"
for a in "$A1" "$A2"; do
  b=$(curl -sS --max-time 5 -H "Authorization: Bearer $(cat "$FTOKEN")" "$a/v1/state" | "$PY" -c 'import json,sys; print(json.load(sys.stdin).get("blocks"))')
  check "agent $a holds the block: $b" grep -q "'acme::international': 0" <<< "$b"
done
for i in 1 2; do
  got=$(call $i $INTL); check "SBC $i: international now $got" [ "$got" = "403 block:class:international" ]
  got=$(call $i $NATL); check "SBC $i: national still $got" [ "$got" = "200 dst:national" ]
done
K -n "$NS" get events --field-selector involvedObject.name=acme -o jsonpath='{range .items[*]}{.reason}{"\n"}{end}' > "$WORK/events" 2>/dev/null || true
check "Events record the steps ($(sort -u "$WORK/events" | tr '\n' ' '))" bash -c "grep -q BlockApplied '$WORK/events' && grep -q ResponseActive '$WORK/events'"

wait "$LOAD" || true; LOAD=   # the load's calls end (BYE): below the levels again
ans=$(grep -c '^RESULT .* 200 ' "$WORK/intl.log" 2>/dev/null || true)
check "the load: $ans of 8 answered before the levels and the block cut in" [ "$ans" -ge 1 ] && [ "$ans" -le 3 ]

st=$(KT -n "$NS" status acme || true)
check "kubectl tollgate status shows the response in force and how to release it" \
  bash -c "grep -q 'respond:concurrent:international:critical: block international since .* until released' <<< '$st' && grep -q 'kubectl tollgate release acme' <<< '$st'"
got=$(KT -n "$NS" explain acme --to +14165550109 --from "$ACME" -o json | "$PY" -c 'import json,sys; d=json.load(sys.stdin)["decision"]; print(d["outcome"], d["rule"]["id"])' || true)
check "kubectl tollgate explain: an international call is blocked by the response in force, as on the SBCs ($got)" \
  [ "$got" = "deny block:class:international" ]
err=$(KT -n "$NS" release acme respond:nothing 2>&1 >/dev/null; echo "rc=$?")
check "kubectl tollgate release refuses a rule not in force (exit 2, names those in force): $err" \
  bash -c "[[ '$err' == *'rc=2'* && '$err' == *respond:concurrent:international:critical* ]]"

say "acknowledge: kubectl tollgate release acme --all (the annotation tollgate.dev/release=all)"
t0=$(now_ms)
release
check "released in $(( $(now_ms) - t0 )) ms: activeResponses empty, annotation removed" [ -z "$ar" ] && [ -z "$ann" ]
for i in 1 2; do
  got=$(call $i $INTL); check "SBC $i: international after the release $got" [ "${got%% *}" = 200 ]
done
K -n "$NS" get events --field-selector involvedObject.name=acme -o jsonpath='{range .items[*]}{.reason}{"\n"}{end}' > "$WORK/events" 2>/dev/null || true
check "a ResponseReleased event" grep -q ResponseReleased "$WORK/events"
sleep 3   # Alertmanager re-sends and resolves what it holds: no alert re-blocks
ar=$(active)
b=$(curl -sS --max-time 5 -H "Authorization: Bearer $(cat "$FTOKEN")" "$A1/v1/state" | "$PY" -c 'import json,sys; print(json.load(sys.stdin).get("blocks"))')
check "3 s later still released (status '$ar', agent 1 blocks $b)" [ -z "$ar" ] && [ "$b" = "{}" ]

say "1b. restart: the operator stops and starts again while the alert keeps firing"
curl -sS --max-time 5 "$AM/api/v2/alerts?active=true&filter=alertname%3D%22TollgateConcurrentCritical%22" > "$WORK/am-crit.json" || true
inst=$("$PY" -c 'import json,sys; a=[x for x in json.load(open(sys.argv[1])) if x["status"]["state"]=="active"]; print(a[0]["fingerprint"], a[0]["startsAt"]) if a else None' "$WORK/am-crit.json" 2>/dev/null || true)
check "Alertmanager still holds TollgateConcurrentCritical firing (fingerprint startsAt: $inst)" [ -n "$inst" ]
acks=$(K -n "$NS" get tollpolicy acme -o jsonpath='{.status.acknowledgedAlerts}' 2>/dev/null || true)
check "status.acknowledgedAlerts records that instance as Released ($acks)" "$PY" -c '
import json, sys, datetime
fp, starts = sys.argv[2].split()
t = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
acks = json.loads(sys.argv[1] or "[]")
sys.exit(0 if any(a["alert"]["fingerprint"] == fp and t(a["alert"]["startsAt"]) == t(starts)
                  and a["reason"] == "Released" and a["rule"] == "respond:concurrent:international:critical"
                  for a in acks) else 1)' "$acks" "$inst"
kill "$OP_PID" 2>/dev/null || true; wait "$OP_PID" 2>/dev/null || true; OP_PID=
start_operator "$WORK/operator-2.log"
check "the operator is up again" curl -sf --max-time 2 -o /dev/null "http://$OP_IP:18080/readyz"
# Alertmanager re-sends the firing alerts every 2 s: wait for the new
# process to receive the released instance again and ignore it
for i in $(seq 1 50); do
  grep -q 'acknowledged alert instance re-sent; ignored' "$WORK/operator-2.log" && break
  sleep 0.2
done
check "Alertmanager re-sent the released alert to the restarted operator, which ignored it" \
  bash -c "grep 'acknowledged alert instance re-sent; ignored' '$WORK/operator-2.log' | grep -q 'TollgateConcurrentCritical'"
sleep 2
ar=$(active)
for a in "$A1" "$A2"; do
  b=$(curl -sS --max-time 5 -H "Authorization: Bearer $(cat "$FTOKEN")" "$a/v1/state" | "$PY" -c 'import json,sys; print(json.load(sys.stdin).get("blocks"))')
  check "agent $a still holds no block after the restart and the re-sends ($b)" [ "$b" = "{}" ]
done
check "status.activeResponses still empty after the restart ('$ar')" [ -z "$ar" ]
for i in 1 2; do
  got=$(call $i $INTL); check "SBC $i: international still $got" [ "${got%% *}" = 200 ]
done
# Alertmanager's alert as it would send it, the instant written with an
# offset instead of Z (another key for the receiver's in-memory set, the
# same instance for the operator): 200, listed under `ignored` with the
# reason; then the same alert fired anew (startsAt now): it acts
"$PY" - "$WORK/am-crit.json" "$WORK" <<'PY'
import json, sys, datetime
alerts, out = json.load(open(sys.argv[1])), sys.argv[2]
a = [x for x in alerts if x["status"]["state"] == "active"][0]
def payload(starts):
    return {"version": "4", "groupKey": "replay", "truncatedAlerts": 0, "status": "firing",
            "receiver": "tollgate", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
            "externalURL": "http://replay", "alerts": [
                {"status": "firing", "labels": a["labels"], "annotations": a.get("annotations", {}),
                 "startsAt": starts, "endsAt": "0001-01-01T00:00:00Z",
                 "generatorURL": a.get("generatorURL", ""), "fingerprint": a["fingerprint"]}]}
json.dump(payload(a["startsAt"].replace("Z", "+00:00")), open(out + "/resend.json", "w"))
now = datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")
json.dump(payload(now), open(out + "/anew.json", "w"))
PY
post() { curl -sS --max-time 10 -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  --data-binary "@$1" "$RX" 2>/dev/null || true; }
r=$(post "$WORK/resend.json")
check "a re-send of the released instance: ignored with the reason ($r)" "$PY" -c '
import json, sys; r = json.loads(sys.argv[1])
sys.exit(0 if r["actions"] == 0 and len(r["ignored"]) == 1
         and "a person released its response" in r["ignored"][0]["reason"] else 1)' "$r"
r=$(post "$WORK/anew.json")
check "the alert fired anew (a new startsAt) acts: $r" "$PY" -c '
import json, sys; r = json.loads(sys.argv[1]); sys.exit(0 if r["actions"] == 1 else 1)' "$r"
for i in 1 2; do
  got=$(call $i $INTL); check "SBC $i: international blocked again $got" [ "$got" = "403 block:class:international" ]
done
release
check "released again" [ -z "$ar" ] && [ -z "$ann" ]
for i in 1 2; do
  got=
  for j in $(seq 1 20); do got=$(call $i $INTL); [ "${got%% *}" = 200 ] && break; sleep 0.2; done
  check "SBC $i: international after the second release $got" [ "${got%% *}" = 200 ]
done

say "2. rollback: revision 2 denies national calls; canary on SBC 1, then a 60 s bake"
t0=$(now_ms)
K apply -f "$WORK/policy-2.json" >/dev/null
got=
for i in $(seq 1 100); do
  got=$(call 1 $NATL)
  [ "$got" = "403 dst:national" ] && break
  sleep 0.3
done
t_deny=$(now_ms)
check "SBC 1 (canary) holds revision 2: national $got ($((t_deny - t0)) ms)" [ "$got" = "403 dst:national" ]
phase=
for i in $(seq 1 200); do
  phase=$(K -n "$NS" get tollpolicy acme -o jsonpath='{.status.phase}' 2>/dev/null || true)
  [ "$phase" = RolledBack ] && break
  sleep 0.2
done
check "rolled back automatically: phase $phase $(( $(now_ms) - t_deny )) ms after the first denial" [ "$phase" = RolledBack ]
reason=$(K -n "$NS" get tollpolicy acme -o jsonpath='{.status.lastRollbackReason}' 2>/dev/null || true)
check "  ... because of the alert ($reason)" grep -q 'TollgateRevisionDeniesNational' <<< "$reason"
for i in 1 2; do
  got=
  for j in $(seq 1 50); do got=$(call $i $NATL); [ "$got" = "200 dst:national" ] && break; sleep 0.2; done
  check "SBC $i: national again $got (the old behaviour)" [ "$got" = "200 dst:national" ]
done
for a in "$A1" "$A2"; do
  r=$(curl -sS --max-time 5 -H "Authorization: Bearer $(cat "$FTOKEN")" "$a/v1/state" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["tenants"]["acme"]["revision"].split("@")[0])')
  check "agent $a holds revision $r" [ "$r" = 1 ]
done

curl -sS --max-time 5 "http://$OP_IP:18080/metrics" > "$WORK/op-metrics" || true
# two-phase applies (docs/operator.md): revision 1, the canary's revision 2
# and the rollback to revision 1 were each staged, then committed; no PUT
stages=()
for a in "$A1" "$A2"; do
  stages+=("$(curl -sS --max-time 5 -H "Authorization: Bearer $(cat "$FTOKEN")" "$a/metrics" | awk '$1 == "tollgate_agent_stages_total" { print $2 }')")
done
check "the agents staged revisions (tollgate_agent_stages_total: SBC 1 ${stages[0]}, >= 3; SBC 2 ${stages[1]}, >= 1)" \
  bash -c "[ '${stages[0]:-0}' -ge 3 ] && [ '${stages[1]:-0}' -ge 1 ]"
commits=$(awk '$1 == "tollgate_operator_agent_calls_total{call=\"commit\",result=\"ok\"}" { print $2 }' "$WORK/op-metrics")
check "the restarted operator committed revision 2 and the rollback (commits ok: ${commits:-0}, >= 2), with no PUT" \
  bash -c "[ '${commits:-0}' -ge 2 ] && ! grep -q 'call=\"apply\"' '$WORK/op-metrics'"
check "the operator's /metrics has the receiver's counters ($(grep -E '^tollgate_alert_actions_total' "$WORK/op-metrics" | tr '\n' ' '))" \
  bash -c "grep -qE '^tollgate_alert_actions_total\{kind=\"respond\"\} [1-9]' '$WORK/op-metrics' && grep -qE '^tollgate_alert_actions_total\{kind=\"rollback\"\} [1-9]' '$WORK/op-metrics'"
check "the operator logged no token" bash -c "! grep -q -- '$TOKEN' '$WORK/operator.log' '$WORK/operator-2.log'"

say "the Grafana dashboard (charts/tollgate/dashboards/tollgate.json): every panel's queries against this Prometheus"
check "examples/monitoring/tollgate-dashboard.json is the chart's dashboard, byte for byte" \
  cmp -s charts/tollgate/dashboards/tollgate.json examples/monitoring/tollgate-dashboard.json
if python3 scripts/dashboard-check.py charts/tollgate/dashboards/tollgate.json "http://$NET.241:9090" \
    --since "$MON_T0" --tenant acme > "$WORK/dashboard.txt"; then
  ok "every panel's query returns series after the calls, the block and the rollback: $(tail -1 "$WORK/dashboard.txt")"
else
  bad "dashboard queries without series:"
fi
grep -v '^  ok' "$WORK/dashboard.txt" || true

echo
echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
