#!/usr/bin/env bash
# Fleet-wide limits (docs/sbc.md "Fleet-wide limits"): a fleet of three SBCs
# (real Kamailio + tollgate-agent each, scripts/fleet.sh with
# TG_FLEET_STORE=1) that count concurrent calls and calls per minute in one
# Redis they share; tenants compiled by `tollgate` and PUT to every agent;
# SIPp spreads the calls evenly over the three SBCs, all at once.
#   1. every SBC counts over the fleet: 3 members, mode fleet (agents'
#      /metrics and /healthz); tollgate-operator (testbed API server, an
#      SbcFleet of the three as endpoints, a TollPolicy fwo on it) shows
#      FleetCounting True in the fleet's and the policy's status
#   2. fwa, `concurrent: critical 4`: 12 long calls, 4 through each SBC at
#      the same moment: exactly 4 are up fleet-wide (the store decides one
#      call at a time: no overshoot), the other 8 get 486 limit:concurrent;
#      the agents' tollgate_concurrent_calls add up to 4
#   3. isolation: fwb (`concurrent: critical 3`) calls while fwa's are up:
#      each tenant counted in its own limits only
#   4. fwr, `rate: critical 6/min`: 18 short calls, 6 through each SBC:
#      exactly 6 answered in the minute, 12 get 486 limit:rate
#   5. a class limit, `concurrent international: critical 2`, with calls to
#      GB arriving at the three SBCs at once: exactly 2 up
#   5b. spare slots: fwl (`concurrent: critical 30`), 15 long calls through
#      each SBC at once: at most 30 up; some admitted into spare slots the
#      store granted (tollgate_fleet_leased_decisions_total), unused ones
#      given back (the store holds each SBC's calls); a second, slower wave
#      fills the limit exactly: 30 of 75 answered, 45 refused
#   5c. the same for a minute's admissions: fwm (`rate: critical 40/min`),
#      20 short calls through each SBC at once: at most 40 answered, some
#      into spare admissions, unused ones given back (the minute's count is
#      the calls answered); a slower second wave in the same minute fills
#      the limit exactly: 40 of 90 answered, 50 refused
#   6. partition: fwp (`concurrent: critical 6`) has 2 calls up on each SBC;
#      SBC 3 is cut off the store: it says degraded (metrics, /healthz) and
#      decides alone with its share, 6/3 = 2 (a third call refused), fwq
#      (`concurrent: critical 2`, no call up) gets 1 call there (never 0);
#      the operator shows it (SbcFleet degraded 1, FleetCounting False
#      naming SBC 3, the policy's FleetCounting False);
#      it rejoins: mode fleet again, its counts in the store equal its
#      calls, the fleet refuses fwp's next call; no call in progress was
#      dropped (every answered call ends with BYE 200 at its own time);
#      the fleet's and the policy's FleetCounting True again
#   6b. an SBC that leaves and joins: SBC 3 holds fwq's 2 calls (its
#      limit) and its Kamailio is stopped: 3 s later the others count 2
#      SBCs and fwq gets a call through SBC 1 (a dead SBC's calls do not
#      hold the limit); started again, it is counted and its old counts
#      in the store are replaced
#   7. after the calls: every SBC's counts and the store's back to 0
#   8. the generated alert rules see the fleet: fws (`concurrent: critical
#      3`) has one call up on each SBC (no SBC above 1, no call refused):
#      a real Prometheus scraping the three agents fires
#      TollgateConcurrentCritical for fws
#
#   scripts/test-fleetwide.sh
#
# Settings: TG_FLEET_NET (third octet of the fleet's addresses, default
# 204). About a minute and a half once built.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

scripts/sbc-install.sh
scripts/monitoring-install.sh
ensure_kubectl

RUN=${TOLLGATE_RUN:-/tmp/tollgate-run}
export TOLLGATE_RUN=$RUN
export TG_FLEET_NET=${TG_FLEET_NET:-204}
export TG_FLEET_STORE=1
NAME=tgfleetwide
N=3
NET=127.0.$TG_FLEET_NET
WORK=$RUN/$NAME-work
PY=$(python_env)

say "building tollgate and tollgate-agent"
build_all
export TG_AGENT_BIN=$CARGO_TARGET_DIR/debug/tollgate-agent
TOLLGATE=$CARGO_TARGET_DIR/debug/tollgate

MON=$RUN/$NAME-monitoring
API_STARTED=0
OP_PID=
NS=tgfw-$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
cleanup() {
  if [ -n "$OP_PID" ]; then
    kill -TERM "$OP_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$OP_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$OP_PID" 2>/dev/null || true
    for o in $(kubectl get tollpolicies -n "$NS" -o name 2>/dev/null); do
      kubectl patch "$o" -n "$NS" --type merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1 || true
    done
    kubectl delete namespace "$NS" --wait=false >/dev/null 2>&1 || true
  fi
  scripts/monitoring.sh stop "$MON" >/dev/null 2>&1 || true
  scripts/fleet.sh stop "$NAME" >/dev/null 2>&1 || true
  if [ "$API_STARTED" = 1 ]; then scripts/apiserver.sh stop >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT
cleanup
rm -rf "$WORK"
mkdir -p "$WORK/calls" "$WORK/policies"

say "tenants with concurrent and rate limits"
policy() { # TENANT NET LIMITS...
  local t=$1 net=$2; shift 2
  {
    printf 'tenant %s\nhome US\nzone UTC\ndestinations {\n  national: allow\n  allow country GB\n}\n' "$t"
    printf 'sources {\n  allow %s\n}\nlimits {\n' "$net"
    printf '  %s\n' "$@"
    printf '}\n'
  } > "$WORK/policies/$t.tgp"
}
policy fwa 127.61.1.0/24 "concurrent: critical 4" "concurrent international: critical 2"
policy fwb 127.61.2.0/24 "concurrent: critical 3"
policy fwr 127.61.3.0/24 "rate: critical 6/min"
policy fwp 127.61.4.0/24 "concurrent: critical 6"
policy fwq 127.61.5.0/24 "concurrent: critical 2"
policy fws 127.61.6.0/24 "concurrent: critical 3"
policy fwo 127.61.7.0/24 "concurrent: critical 5"
policy fwl 127.61.8.0/24 "concurrent: critical 30"
policy fwm 127.61.9.0/24 "rate: critical 40/min"
"$TOLLGATE" check "$WORK/policies" >/dev/null
"$TOLLGATE" compile "$WORK/policies" -o "$WORK/compiled" >/dev/null
"$PY" - "$WORK/compiled" "$WORK" <<'PY'
import json, os, sys, yaml
src, out = sys.argv[1:3]
for f in sorted(os.listdir(src)):
    doc = yaml.safe_load(open(os.path.join(src, f)))
    t = doc["spec"]["tenant"]
    json.dump({"revision": t + "-r1", "policy": doc["spec"]["policy"]}, open(os.path.join(out, t + ".json"), "w"))
PY

say "a fleet of $N SBCs sharing one store"
scripts/fleet.sh start "$NAME" "$N" > "$WORK/start.out"
TOKEN=$(cat "$RUN/$NAME/token")
AGENT_PORT=${TG_FLEET_AGENT_PORT:-9180}
sip_of() { echo "$NET.$1:$((5100 + 10 * $1))"; }
rpc() { # I METHOD [PARAMS JSON]
  curl -s --max-time 5 -H 'Content-Type: application/json' \
    -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"$2\",\"params\":${3:-[]}}" "http://$NET.$1:$((5101 + 10 * $1))/RPC"
}
size() { # I PROFILE VALUE -> calls in the profile on SBC I
  rpc "$1" dlg.profile_get_size "[\"$2\",\"$3\"]" | "$PY" -c 'import json,sys; print(json.load(sys.stdin).get("result", "?"))'
}
store() { REDISCLI_AUTH=$(cat "$RUN/$NAME/store/pass") redis-cli -h "$NET.200" -p 6390 "$@"; }
in_store() { # I FIELD -> SBC I's count of FIELD in the store
  local v; v=$(store HGET "tg:$NAME:c:$NAME-$1" "$2"); echo "${v:-0}"
}
metric() { # I NAME_WITH_LABELS -> its value in agent I's /metrics
  curl -s --max-time 10 -H "Authorization: Bearer $TOKEN" "http://$NET.$1:$AGENT_PORT/metrics" |
    awk -v m="$2" '$1 == m {print $2}'
}
health_mode() { # I -> fleet mode in agent I's /healthz
  curl -s --max-time 5 "http://$NET.$1:$AGENT_PORT/healthz" | jq -r '.fleet.mode // "none"'
}
wait_mode() { # I MODE
  local n
  for n in $(seq 1 50); do [ "$(health_mode "$1")" = "$2" ] && return 0; sleep 0.2; done
  return 1
}

say "1. every SBC counts over the fleet"
for i in 1 2 3; do
  wait_mode "$i" fleet || true
  # the heartbeat (1 s) counts the SBCs alive
  for _ in $(seq 1 30); do [ "$(metric "$i" tollgate_fleet_members)" = 3 ] && break; sleep 0.2; done
  check "SBC $i: /healthz fleet mode $(health_mode "$i")" [ "$(health_mode "$i")" = fleet ]
  check "SBC $i: tollgate_fleet_members $(metric "$i" tollgate_fleet_members)" [ "$(metric "$i" tollgate_fleet_members)" = 3 ]
  check "SBC $i: tollgate_fleet_degraded $(metric "$i" tollgate_fleet_degraded)" [ "$(metric "$i" tollgate_fleet_degraded)" = 0 ]
done
check "the store lists the three SBCs: $(store ZCARD "tg:$NAME:m")" [ "$(store ZCARD "tg:$NAME:m")" = 3 ]

say "1b. the operator: an SbcFleet of the three SBCs, a TollPolicy on it"
if [ -z "${KUBECONFIG:-}" ]; then
  if ! scripts/apiserver.sh status >/dev/null 2>&1; then API_STARTED=1; fi
  eval "$(scripts/apiserver.sh start)"
fi
[ "$(kubectl config current-context)" = testbed ] || die "refusing to use a cluster whose context is not 'testbed'"
kubectl apply --server-side --force-conflicts -f crds/ >/dev/null
kubectl wait --for=condition=Established --timeout=30s -f crds/ >/dev/null
kubectl create namespace "$NS" >/dev/null
kubectl create secret generic agent-token -n "$NS" --from-file=token="$RUN/$NAME/token" >/dev/null
apply_static_fleet "$NS" "$AGENT_PORT" "$NET.1" "$NET.2" "$NET.3"
"$TOLLGATE" compile "$WORK/policies/fwo.tgp" --fleet edge -n "$NS" -o "$WORK/k8s" > /dev/null 2>&1
kubectl apply -f "$WORK/k8s/fwo.yaml" >/dev/null
NO_COLOR=1 RUST_LOG=info "$CARGO_TARGET_DIR/debug/tollgate-operator" --namespace "$NS" --metrics-addr "$NET.241:9300" \
  --no-leader-election --agent-timeout-secs 3 --fleet-status-secs 1 >> "$WORK/operator.log" 2>&1 < /dev/null &
OP_PID=$!
fleet_cond() { # -> "STATUS REASON" of the SbcFleet's FleetCounting
  kubectl get sbcfleet edge -n "$NS" -o jsonpath='{.status.conditions[?(@.type=="FleetCounting")].status} {.status.conditions[?(@.type=="FleetCounting")].reason}' 2>/dev/null
}
policy_cond() { # -> "STATUS REASON" of TollPolicy fwo's FleetCounting
  kubectl get tollpolicy fwo -n "$NS" -o jsonpath='{.status.conditions[?(@.type=="FleetCounting")].status} {.status.conditions[?(@.type=="FleetCounting")].reason}' 2>/dev/null
}
wait_status() { # WHAT(fleet_cond|policy_cond) WANT
  local n
  for n in $(seq 1 100); do [ "$("$1")" = "$2" ] && return 0; sleep 0.2; done
  return 1
}
wait_status fleet_cond "True CountingFleetWide" || true
check "SbcFleet edge: FleetCounting $(fleet_cond) ($(kubectl get sbcfleet edge -n "$NS" -o jsonpath='{.status.conditions[?(@.type=="FleetCounting")].message}'))" \
  [ "$(fleet_cond)" = "True CountingFleetWide" ]
check "SbcFleet edge: degraded $(kubectl get sbcfleet edge -n "$NS" -o jsonpath='{.status.degraded}')" \
  [ "$(kubectl get sbcfleet edge -n "$NS" -o jsonpath='{.status.degraded}')" = 0 ]
wait_status policy_cond "True CountingFleetWide" || true
check "TollPolicy fwo: FleetCounting $(policy_cond)" [ "$(policy_cond)" = "True CountingFleetWide" ]

for t in fwa fwb fwr fwp fwq fws fwl fwm; do
  for i in 1 2 3; do
    code=$(curl -s --max-time 120 -o "$WORK/put-$t-$i.json" -w '%{http_code}' -X PUT \
      -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
      --data-binary "@$WORK/$t.json" "http://$NET.$i:$AGENT_PORT/v1/tenants/$t")
    check "PUT $t to agent $i: $code" [ "$code" = 200 ]
  done
done

# calls TAG I SRC NUMBER COUNT HOLD_MS [RATE]: COUNT calls through SBC I,
# RATE per second (default 10), in the background
calls() {
  local tag=$1 i=$2 src=$3 num=$4 count=$5 hold=$6 rate=${7:-10} f=$WORK/calls/$1
  { echo SEQUENTIAL; for _ in $(seq 1 "$count"); do echo "$num;RTP/AVP"; done; } > "$f.csv"
  (exec timeout $(( hold / 1000 + 40 )) sipp "$(sip_of "$i")" -sf sbc/sipp/uac.xml -inf "$f.csv" \
    -i "$src" -p 0 -t u1 -m "$count" -r "$rate" -l "$count" -d "$hold" -nostdin -timeout $(( hold / 1000 + 30 ))s \
    -trace_logs -log_file "$f.log" -trace_err -error_file "$f.err") > "$f.out" 2>&1 &
  echo $! > "$f.pid"
}
wait_calls() { local f; for f in "$@"; do wait "$(cat "$WORK/calls/$f.pid")" 2>/dev/null || true; done; }
count() { # CODE [RULE] TAG... -> RESULT lines with that code (and rule)
  local code=$1 rule=$2; shift 2
  local t n=0
  for t in "$@"; do
    n=$(( n + $(grep -c "^RESULT [^ ]* $code ${rule}\b" "$WORK/calls/$t.log" 2>/dev/null || true) ))
  done
  echo "$n"
}
byes() { # TAG... -> BYEs answered 200
  local t n=0
  for t in "$@"; do n=$(( n + $(grep -c '^BYE .* 200$' "$WORK/calls/$t.log" 2>/dev/null || true) )); done
  echo "$n"
}

say "2. fwa, concurrent: critical 4; 12 long calls, 4 through each SBC at once"
for i in 1 2 3; do calls "a$i" "$i" "127.61.1.$i" +12125550100 4 10000 20; done
sleep 3
sizes=$(for i in 1 2 3; do printf '%s ' "$(size "$i" tg_t fwa)"; done)
ok200=$(count 200 "" a1 a2 a3); ok486=$(count 486 limit:concurrent a1 a2 a3)
echo "fleet-wide: $ok200 answered, $ok486 refused; fwa's calls on SBCs 1-3: $sizes"
check "exactly 4 of fwa's calls up fleet-wide: $ok200" [ "$ok200" = 4 ]
check "the other 8 refused 486 limit:concurrent: $ok486" [ "$ok486" = 8 ]
check "the SBCs' own calls add up to 4: $sizes" [ "$(( ${sizes// /+} 0 ))" = 4 ]
check "the store holds each SBC's own count: $(in_store 1 fwa) $(in_store 2 fwa) $(in_store 3 fwa)" \
  [ "$(in_store 1 fwa) $(in_store 2 fwa) $(in_store 3 fwa) " = "$sizes" ]
m=0
for i in 1 2 3; do m=$(( m + $(metric "$i" 'tollgate_concurrent_calls{tenant="fwa"}') )); done
check "the agents' tollgate_concurrent_calls{tenant=\"fwa\"} add up to 4 (sum by tenant in the alert rules): $m" [ "$m" = 4 ]

say "3. isolation: fwb (critical 3) calls while fwa's 4 are up"
for i in 1 2 3; do calls "b$i" "$i" "127.61.2.$i" +12125550111 2 3000 20; done
sleep 2
b200=$(count 200 "" b1 b2 b3); b486=$(count 486 limit:concurrent b1 b2 b3)
check "fwb: 3 answered, 3 refused: $b200/$b486" [ "$b200/$b486" = 3/3 ]
fwa_now=$(( $(size 1 tg_t fwa) + $(size 2 tg_t fwa) + $(size 3 tg_t fwa) ))
check "fwa's count did not move: $fwa_now" [ "$fwa_now" = 4 ]

say "4. fwr, rate: critical 6/min; 18 short calls, 6 through each SBC"
# the store counts per minute of its own clock: start early in a minute
sec=$(( $(store TIME | head -1) % 60 ))
if [ "$sec" -gt 45 ]; then sleep $(( 61 - sec )); fi
for i in 1 2 3; do calls "r$i" "$i" "127.61.3.$i" +12125550122 6 200 20; done
wait_calls r1 r2 r3
r200=$(count 200 "" r1 r2 r3); r486=$(count 486 limit:rate r1 r2 r3)
echo "calls per minute fleet-wide: $r200 answered, $r486 refused"
check "exactly 6 of fwr's calls answered in the minute, 12 refused 486 limit:rate: $r200/$r486" [ "$r200/$r486" = 6/12 ]

say "5. a class limit, simultaneous arrivals: concurrent international critical 2, 2 calls to GB through each SBC at once"
wait_calls a1 a2 a3 b1 b2 b3
# an ended call is counted until its SBC's next flush (100 ms)
sleep 0.3
for i in 1 2 3; do calls "c$i" "$i" "127.61.1.1$i" +442071234567 2 4000 20; done
sleep 2
c200=$(count 200 "" c1 c2 c3); c486=$(count 486 limit:concurrent:international c1 c2 c3)
echo "simultaneous arrivals: $c200 answered, $c486 refused"
check "international: exactly 2 answered, 4 refused 486 limit:concurrent:international: $c200/$c486" [ "$c200/$c486" = 2/4 ]
wait_calls c1 c2 c3
nbye=$(byes a1 a2 a3 b1 b2 b3 r1 r2 r3 c1 c2 c3)
check "every answered call so far ended with BYE 200: $nbye" [ "$nbye" = $(( ok200 + b200 + r200 + c200 )) ]

say "5b. spare slots: fwl, concurrent: critical 30; 15 long calls through each SBC at 30/s, then 10 more each at 5/s"
leased0=0
for i in 1 2 3; do leased0=$(( leased0 + $(metric "$i" tollgate_fleet_leased_decisions_total) )); done
for i in 1 2 3; do calls "l$i" "$i" "127.61.8.$i" +12125550166 15 15000 30; done
sleep 1.5
l200=$(count 200 "" l1 l2 l3)
lsizes=$(for i in 1 2 3; do printf '%s ' "$(size "$i" tg_t fwl)"; done)
leased=0
for i in 1 2 3; do leased=$(( leased + $(metric "$i" tollgate_fleet_leased_decisions_total) )); done
echo "first wave: $l200 answered, $(count 486 limit:concurrent l1 l2 l3) refused; fwl's calls on SBCs 1-3: $lsizes; admitted into spare slots: $(( leased - leased0 ))"
check "first wave: at most 30 of fwl's calls up fleet-wide: $l200 answered, $lsizes up" \
  [ "$l200" -le 30 -a "$(( ${lsizes// /+} 0 ))" = "$l200" ]
check "some calls were admitted into spare slots, without a round trip: $(( leased - leased0 ))" [ "$(( leased - leased0 ))" -gt 0 ]
check "unused spare slots are given back: the store holds each SBC's calls: $(in_store 1 fwl) $(in_store 2 fwl) $(in_store 3 fwl)" \
  [ "$(in_store 1 fwl) $(in_store 2 fwl) $(in_store 3 fwl) " = "$lsizes" ]
for i in 1 2 3; do calls "m$i" "$i" "127.61.8.1$i" +12125550166 10 10000 5; done
sleep 3
l200=$(count 200 "" l1 l2 l3 m1 m2 m3); l486=$(count 486 limit:concurrent l1 l2 l3 m1 m2 m3)
lsizes=$(for i in 1 2 3; do printf '%s ' "$(size "$i" tg_t fwl)"; done)
echo "both waves: $l200 answered, $l486 refused; fwl's calls on SBCs 1-3: $lsizes"
check "both waves: exactly 30 of fwl's 75 calls answered, 45 refused 486 limit:concurrent: $l200/$l486" [ "$l200/$l486" = 30/45 ]
check "30 up fleet-wide: $lsizes" [ "$(( ${lsizes// /+} 0 ))" = 30 ]
wait_calls l1 l2 l3 m1 m2 m3

say "5c. spare admissions of a minute: fwm, rate: critical 40/min; 20 short calls through each SBC at 30/s, then 10 more each at 5/s"
sec=$(( $(store TIME | head -1) % 60 ))
if [ "$sec" -gt 40 ]; then sleep $(( 61 - sec )); fi
minute=$(( $(store TIME | head -1) / 60 ))
leased0=0
for i in 1 2 3; do leased0=$(( leased0 + $(metric "$i" tollgate_fleet_leased_decisions_total) )); done
for i in 1 2 3; do calls "n$i" "$i" "127.61.9.$i" +12125550177 20 200 30; done
wait_calls n1 n2 n3
n200=$(count 200 "" n1 n2 n3)
leased=0
for i in 1 2 3; do leased=$(( leased + $(metric "$i" tollgate_fleet_leased_decisions_total) )); done
echo "first wave: $n200 answered, $(count 486 limit:rate n1 n2 n3) refused; admitted into spare admissions: $(( leased - leased0 ))"
check "first wave: at most 40 of fwm's calls answered in the minute: $n200" [ "$n200" -le 40 ]
check "some calls were admitted into spare admissions of the minute: $(( leased - leased0 ))" [ "$(( leased - leased0 ))" -gt 0 ]
sleep 0.3
inmin=$(store GET "tg:$NAME:r:fwm:$minute")
check "unused spare admissions are given back: the minute's count is the calls answered: $inmin = $n200" [ "$inmin" = "$n200" ]
for i in 1 2 3; do calls "o$i" "$i" "127.61.9.1$i" +12125550177 10 200 5; done
wait_calls o1 o2 o3
n200=$(count 200 "" n1 n2 n3 o1 o2 o3); n486=$(count 486 limit:rate n1 n2 n3 o1 o2 o3)
check "both waves, in one minute of the store: exactly 40 of fwm's 90 calls answered, 50 refused 486 limit:rate: $n200/$n486 (minute $(( $(store TIME | head -1) / 60 - minute )) later)" \
  [ "$n200/$n486/$(( $(store TIME | head -1) / 60 ))" = "40/50/$minute" ]

say "6. partition: SBC 3 cut off the store while fwp has 2 calls up on each SBC"
for i in 1 2 3; do calls "p$i" "$i" "127.61.4.$i" +12125550133 2 25000 20; done
sleep 2
p200=$(count 200 "" p1 p2 p3)
check "fwp: 6 calls up (its limit): $p200" [ "$p200" = 6 ]
scripts/fleet.sh part "$NAME" 3 store cut
wait_mode 3 degraded || true
check "SBC 3: /healthz fleet mode $(health_mode 3)" [ "$(health_mode 3)" = degraded ]
check "SBC 3: tollgate_fleet_degraded $(metric 3 tollgate_fleet_degraded)" [ "$(metric 3 tollgate_fleet_degraded)" = 1 ]
check "SBCs 1 and 2 still count over the fleet: $(health_mode 1) $(health_mode 2)" [ "$(health_mode 1) $(health_mode 2)" = "fleet fleet" ]
wait_status fleet_cond "False CountingDegraded" || true
msg=$(kubectl get sbcfleet edge -n "$NS" -o jsonpath='{.status.conditions[?(@.type=="FleetCounting")].message}')
names_sbc3() { [ "$(fleet_cond)" = "False CountingDegraded" ] && [[ $msg == *"$NET.3:$AGENT_PORT" ]]; }
check "SbcFleet edge: FleetCounting $(fleet_cond): $msg" names_sbc3
check "SbcFleet edge: degraded $(kubectl get sbcfleet edge -n "$NS" -o jsonpath='{.status.degraded}')" \
  [ "$(kubectl get sbcfleet edge -n "$NS" -o jsonpath='{.status.degraded}')" = 1 ]
wait_status policy_cond "False CountingDegraded" || true
check "TollPolicy fwo: FleetCounting $(policy_cond)" [ "$(policy_cond)" = "False CountingDegraded" ]
kubectl get sbcfleet edge -n "$NS" | sed 's/^/    /'
r=$(scripts/fleet.sh call "$NAME" 3 127.61.4.9 +12125550133)
check "SBC 3 alone: fwp has 2 up there, its share is 6/3 = 2: a third call is refused ($r)" [ "$r" = "486 limit:concurrent" ]
calls q3 3 127.61.5.3 +12125550144 2 3000 20
wait_calls q3
check "SBC 3 alone: fwq (critical 2, nothing up) gets its share, 1 call, not 0: $(count 200 "" q3) answered, $(count 486 limit:concurrent q3) refused" \
  [ "$(count 200 "" q3)/$(count 486 limit:concurrent q3)" = 1/1 ]
loc=$(metric 3 tollgate_fleet_local_decisions_total)
check "SBC 3 counts the calls it decided alone: $loc" [ "${loc:-0}" -ge 3 ]
scripts/fleet.sh part "$NAME" 3 store join
wait_mode 3 fleet || true
check "SBC 3 rejoined: /healthz fleet mode $(health_mode 3)" [ "$(health_mode 3)" = fleet ]
check "SBC 3's counts in the store equal its calls: fwp $(in_store 3 fwp) = $(size 3 tg_t fwp)" [ "$(in_store 3 fwp)" = "$(size 3 tg_t fwp)" ]
r=$(scripts/fleet.sh call "$NAME" 1 127.61.4.8 +12125550133)
check "the fleet counts SBC 3's calls again: fwp's next call through SBC 1 is refused ($r)" [ "$r" = "486 limit:concurrent" ]
part=$(metric 3 tollgate_fleet_partitions_total)
check "SBC 3: tollgate_fleet_partitions_total $part" [ "${part:-0}" -ge 1 ]
wait_status fleet_cond "True CountingFleetWide" || true
check "SbcFleet edge after the rejoin: FleetCounting $(fleet_cond)" [ "$(fleet_cond)" = "True CountingFleetWide" ]
wait_status policy_cond "True CountingFleetWide" || true
check "TollPolicy fwo after the rejoin: FleetCounting $(policy_cond)" [ "$(policy_cond)" = "True CountingFleetWide" ]
wait_calls p1 p2 p3
check "no call in progress was dropped: 6 BYEs answered 200 after 25 s: $(byes p1 p2 p3)" [ "$(byes p1 p2 p3)" = 6 ]

say "6b. SBC 3 leaves (its Kamailio stopped) with fwq's 2 calls up, then joins again"
calls d3 3 127.61.5.4 +12125550144 2 30000 20
sleep 1.5
r=$(scripts/fleet.sh call "$NAME" 1 127.61.5.8 +12125550144)
check "fwq's 2 calls on SBC 3 fill its limit: a call through SBC 1 is refused ($r)" [ "$r" = "486 limit:concurrent" ]
scripts/fleet.sh part "$NAME" 3 kamailio stop
kill "$(cat "$WORK/calls/d3.pid")" 2>/dev/null || true
for _ in $(seq 1 40); do [ "$(metric 1 tollgate_fleet_members)" = 2 ] && break; sleep 0.2; done
check "SBC 1 counts 2 SBCs once SBC 3 stopped: $(metric 1 tollgate_fleet_members)" [ "$(metric 1 tollgate_fleet_members)" = 2 ]
r=$(scripts/fleet.sh call "$NAME" 1 127.61.5.8 +12125550144)
answered() { [[ $1 == "200 "* ]]; }
check "the stopped SBC's calls no longer hold fwq's limit: a call through SBC 1 is answered ($r)" answered "$r"
check "the store still has SBC 3's last counts (fwq $(in_store 3 fwq)), not counted" [ "$(in_store 3 fwq)" = 2 ]
scripts/fleet.sh part "$NAME" 3 kamailio start
wait_mode 3 fleet || true
for _ in $(seq 1 40); do [ "$(metric 1 tollgate_fleet_members)" = 3 ] && break; sleep 0.2; done
check "SBC 3 joined again: mode $(health_mode 3), SBC 1 counts $(metric 1 tollgate_fleet_members) SBCs" \
  [ "$(health_mode 3)/$(metric 1 tollgate_fleet_members)" = fleet/3 ]
check "its old counts in the store are replaced: fwq $(in_store 3 fwq)" [ "$(in_store 3 fwq)" = 0 ]

say "7. after the calls: every SBC's counts and the store's back to 0"
sleep 1
for t in fwa fwp fwl; do
  for i in 1 2 3; do
    check "SBC $i: $t $(size "$i" tg_t "$t") up, $(in_store "$i" "$t") in the store" [ "$(size "$i" tg_t "$t")/$(in_store "$i" "$t")" = 0/0 ]
  done
done

say "8. the alert rules add the SBCs up: fws, critical 3, one call up on each SBC"
"$CARGO_TARGET_DIR/debug/tollgate-rules" --namespace fleetwide "$WORK/compiled/fws.yaml" > "$WORK/rules.yml" 2>/dev/null
grep -q 'sum by (tenant) (tollgate_concurrent_calls{tenant="fws"}) >= 3' "$WORK/rules.yml" ||
  check "the rules measure fws's calls as the sum over the SBCs" false
scripts/monitoring.sh start "$MON" --target "$NET.1:$AGENT_PORT" --target "$NET.2:$AGENT_PORT" \
  --target "$NET.3:$AGENT_PORT" --scrape-token-file "$RUN/$NAME/token" --rules "$WORK/rules.yml" \
  --prometheus "$NET.240:9090" --alertmanager "$NET.240:9093"
PROM=http://$NET.240:9090
for i in 1 2 3; do calls "s$i" "$i" "127.61.6.$i" +12125550155 1 12000; done
fired=
for _ in $(seq 1 50); do
  fired=$(prom_value "$PROM" 'count(ALERTS{alertname="TollgateConcurrentCritical",tenant="fws"})')
  [ -n "$fired" ] && break
  sleep 0.2
done
most=$(prom_value "$PROM" 'max(tollgate_concurrent_calls{tenant="fws"})')
all=$(prom_value "$PROM" 'sum(tollgate_concurrent_calls{tenant="fws"})')
check "fws: 3 calls answered, none refused: $(count 200 "" s1 s2 s3)/$(count 486 "" s1 s2 s3)" [ "$(count 200 "" s1 s2 s3)/$(count 486 "" s1 s2 s3)" = 3/0 ]
check "Prometheus sees the split: at most $most per SBC, $all in all" [ "$most/$all" = 1/3 ]
check "TollgateConcurrentCritical fires for fws (a breach split over the SBCs alarms)" [ -n "$fired" ]
wait_calls s1 s2 s3

echo
echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
