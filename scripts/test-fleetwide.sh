#!/usr/bin/env bash
# Fleet-wide concurrent-call limits (docs/sbc.md "Fleet-wide limits"): a
# fleet of three SBCs (real Kamailio + tollgate-agent each, scripts/fleet.sh
# with TG_FLEET_DMQ=1) that replicate their dialogs over Kamailio's DMQ; two
# tenants compiled by `tollgate` and PUT to every agent; SIPp spreads long
# calls evenly over the three SBCs.
#   1. the bus: every SBC lists the other two as active peers
#   2. tenant fwa, `concurrent: critical 4`: 12 long calls, 4 through each
#      SBC, arriving 33 ms apart fleet-wide: exactly 4 are up at once; the
#      others get 486 limit:concurrent;
#      every SBC's profile and every agent's tollgate_concurrent_calls say
#      the fleet-wide count
#   3. isolation: tenant fwb (`concurrent: critical 3`) calls while fwa's
#      calls are up; each tenant is counted in its own limits only
#   4. calls end: every SBC's counts go back to 0
#   5. a class limit, `concurrent international: critical 2`, with calls
#      arriving at the three SBCs at once: the overshoot is printed and
#      bounded (one call per other SBC)
#   6. the replication port takes no calls; KDMQ on the SIP port is refused
#
#   scripts/test-fleetwide.sh
#
# Settings: TG_FLEET_NET (third octet of the fleet's addresses, default
# 204). About a minute once built.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

scripts/sbc-install.sh

RUN=${TOLLGATE_RUN:-/tmp/tollgate-run}
export TOLLGATE_RUN=$RUN
export TG_FLEET_NET=${TG_FLEET_NET:-204}
export TG_FLEET_DMQ=1
NAME=tgfleetwide
N=3
NET=127.0.$TG_FLEET_NET
WORK=$RUN/$NAME-work
PY=$(python_env)

say "building tollgate and tollgate-agent"
build_all
export TG_AGENT_BIN=$CARGO_TARGET_DIR/debug/tollgate-agent
TOLLGATE=$CARGO_TARGET_DIR/debug/tollgate

cleanup() { scripts/fleet.sh stop "$NAME" >/dev/null 2>&1 || true; }
trap cleanup EXIT
cleanup
rm -rf "$WORK"
mkdir -p "$WORK/calls" "$WORK/policies"

say "two tenants with concurrent-call limits"
cat > "$WORK/policies/fwa.tgp" <<'EOF'
tenant fwa
home US
zone UTC
destinations {
  national: allow
  allow country GB
}
sources {
  allow 127.61.1.0/24
}
limits {
  concurrent: critical 4
  concurrent international: critical 2
}
EOF
cat > "$WORK/policies/fwb.tgp" <<'EOF'
tenant fwb
home US
zone UTC
destinations {
  national: allow
}
sources {
  allow 127.61.2.0/24
}
limits {
  concurrent: critical 3
}
EOF
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

say "a fleet of $N SBCs replicating dialogs over DMQ"
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
active_peers() { # I -> active DMQ nodes other than itself
  rpc "$1" dmq.list_nodes | "$PY" -c '
import json, sys
r = json.load(sys.stdin).get("result", [])
print(sum(1 for n in r if n.get("status") == "active" and n.get("local") == 0))'
}

say "1. the replication bus"
for i in 1 2 3; do
  for _ in $(seq 1 100); do [ "$(active_peers "$i")" = 2 ] && break; sleep 0.2; done
  n=$(active_peers "$i")
  check "SBC $i: $n active peers on the bus" [ "$n" = 2 ]
done

for t in fwa fwb; do
  for i in 1 2 3; do
    code=$(curl -s --max-time 120 -o "$WORK/put-$t-$i.json" -w '%{http_code}' -X PUT \
      -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
      --data-binary "@$WORK/$t.json" "http://$NET.$i:$AGENT_PORT/v1/tenants/$t")
    check "PUT $t to agent $i: $code" [ "$code" = 200 ]
  done
done

# long_calls TAG I SRC NUMBER COUNT HOLD_MS [DELAY_S]: after DELAY_S, COUNT
# calls through SBC I, 100 ms apart, in the background
long_calls() {
  local tag=$1 i=$2 src=$3 num=$4 count=$5 hold=$6 delay=${7:-0} f=$WORK/calls/$1
  { echo SEQUENTIAL; for _ in $(seq 1 "$count"); do echo "$num;RTP/AVP"; done; } > "$f.csv"
  (sleep "$delay"; exec timeout $(( hold / 1000 + 40 )) sipp "$(sip_of "$i")" -sf sbc/sipp/uac.xml -inf "$f.csv" \
    -i "$src" -p 0 -t u1 -m "$count" -r 10 -l "$count" -d "$hold" -nostdin -timeout $(( hold / 1000 + 30 ))s \
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

say "2. fwa, concurrent: critical 4; 12 long calls, 4 through each SBC, arriving 33 ms apart"
# SBC i's calls start 33*i ms late: the fleet sees one call every 33 ms, ten
# times the measured p99 propagation (scripts/bench-fleetwide.sh), so no
# overshoot is allowed here (step 5 measures simultaneous arrivals)
for i in 1 2 3; do long_calls "a$i" "$i" "127.61.1.$i" +12125550100 4 8000 "0.0$((33 * i))"; done
sleep 3
sizes=$(for i in 1 2 3; do printf '%s ' "$(size "$i" tg_t fwa)"; done)
ok200=$(count 200 "" a1 a2 a3); ok486=$(count 486 limit:concurrent a1 a2 a3)
echo "fleet-wide: $ok200 answered, $ok486 refused; profile tg_t/fwa on SBCs 1-3: $sizes"
check "exactly 4 of fwa's calls up fleet-wide (not more, and not a silent 0): $ok200" [ "$ok200" = 4 ]
check "the other 8 refused 486 limit:concurrent: $ok486" [ "$ok486" = 8 ]
check "every SBC counts the fleet's 4: $sizes" [ "$sizes" = "4 4 4 " ]
for i in 1 2 3; do
  m=$(curl -s --max-time 10 -H "Authorization: Bearer $TOKEN" "http://$NET.$i:$AGENT_PORT/metrics" |
    awk '/^tollgate_concurrent_calls\{tenant="fwa"\}/ {print $2}')
  check "agent $i: tollgate_concurrent_calls{tenant=\"fwa\"} $m" [ "$m" = 4 ]
done

say "3. isolation: fwb (critical 3) calls while fwa's 4 are up"
for i in 1 2 3; do long_calls "b$i" "$i" "127.61.2.$i" +12125550111 2 3000 "0.0$((33 * i))"; done
sleep 2
b200=$(count 200 "" b1 b2 b3); b486=$(count 486 limit:concurrent b1 b2 b3)
check "fwb: 3 answered, 3 refused: $b200/$b486" [ "$b200/$b486" = 3/3 ]
check "fwb's calls are not in fwa's count: $(size 2 tg_t fwa)" [ "$(size 2 tg_t fwa)" = 4 ]
check "fwb counted on every SBC: $(size 1 tg_t fwb) $(size 3 tg_t fwb)" [ "$(size 1 tg_t fwb) $(size 3 tg_t fwb)" = "3 3" ]
wait_calls a1 a2 a3 b1 b2 b3
nbye=$(grep -hc '^BYE .* 200$' "$WORK"/calls/a?.log "$WORK"/calls/b?.log | awk '{n += $1} END {print n + 0}')
check "every answered call ended with BYE 200: $nbye" [ "$nbye" = $(( ok200 + b200 )) ]

say "4. after the calls: every SBC's counts back to 0"
sleep 1
for i in 1 2 3; do
  check "SBC $i: tg_t fwa $(size "$i" tg_t fwa), fwb $(size "$i" tg_t fwb)" [ "$(size "$i" tg_t fwa)/$(size "$i" tg_t fwb)" = 0/0 ]
done

say "5. a class limit fleet-wide, simultaneous arrivals: concurrent international critical 2, 2 calls to GB through each SBC at once"
# the three SBCs each take a call in the same millisecond: each decides
# before the others' calls reach it, so up to 2 more (one per other SBC) may
# get through; the overshoot is printed (docs/sbc.md)
for i in 1 2 3; do long_calls "c$i" "$i" "127.61.1.1$i" +442071234567 2 4000; done
sleep 2
c200=$(count 200 "" c1 c2 c3); c486=$(count 486 limit:concurrent:international c1 c2 c3)
echo "simultaneous arrivals: $c200 answered (limit 2, overshoot $(( c200 > 2 ? c200 - 2 : 0 ))), $c486 refused"
check "international: 2 to 4 answered (limit 2 + at most one per other SBC), the rest 486 limit:concurrent:international: $c200/$c486" \
  bash -c "[ $c200 -ge 2 ] && [ $c200 -le 4 ] && [ $(( c200 + c486 )) = 6 ]"
check "class profile tg_c fwa::international equal on every SBC: $(size 1 tg_c fwa::international) $(size 2 tg_c fwa::international) $(size 3 tg_c fwa::international)" \
  [ "$(size 1 tg_c fwa::international) $(size 2 tg_c fwa::international) $(size 3 tg_c fwa::international)" = "$c200 $c200 $c200" ]
wait_calls c1 c2 c3

say "6. the replication port takes no calls; KDMQ on the SIP port is refused"
f=$WORK/calls/dmqport
{ echo SEQUENTIAL; echo "+12125550100;RTP/AVP"; } > "$f.csv"
timeout 20 sipp "$NET.1:5115" -sf sbc/sipp/uac.xml -inf "$f.csv" -i 127.61.1.9 -p 0 -t u1 -m 1 -nostdin -timeout 10s \
  -trace_logs -log_file "$f.log" > /dev/null 2>&1 || true
check "an INVITE to the replication port: 403 ($(awk '/^RESULT/ {print $3}' "$f.log"))" grep -q '^RESULT [^ ]* 403 ' "$f.log"
kdmq=$("$PY" - "$NET.1" 5110 <<'PY'
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.61.1.9", 0)); s.settimeout(5)
lp = s.getsockname()[1]
msg = (f"KDMQ sip:dialog@{host}:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.61.1.9:{lp};branch=z9hG4bKfw1\r\n"
       f"From: <sip:dialog@127.61.1.9:{lp}>;tag=1\r\nTo: <sip:dialog@{host}:{port}>\r\nCall-ID: fw-kdmq-1\r\n"
       "CSeq: 1 KDMQ\r\nMax-Forwards: 1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
s.sendto(msg.encode(), (host, port))
print(s.recv(4096).decode(errors="replace").split("\r\n")[0])
PY
)
check "KDMQ on the SIP port: $kdmq" grep -q ' 403 ' <<< "$kdmq"

echo
echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
