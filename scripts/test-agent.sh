#!/usr/bin/env bash
# The SBC agent end to end: a real Kamailio (tollgate.cfg) started with an
# EMPTY policy set, a SIPp UAS, and tollgate-agent in front of it. Policies
# go in through the agent's HTTP API only (curl + bearer token); calls are
# placed with SIPp and their SIP code / X-Tollgate-Rule asserted.
#
#   scripts/test-agent.sh
#
# Settings: TG_AGENT_TEST_IP (SBC address, default 127.202.0.1; the UAS
# takes .2, the trial instances .9), TOLLGATE_RUN (default /tmp/tollgate-run).
# Bounded: every curl has --max-time, every SIPp run -m/-timeout and
# `timeout`, every wait loop a count. About two minutes.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

scripts/sbc-install.sh

RUN=${TOLLGATE_RUN:-/tmp/tollgate-run}
export TOLLGATE_RUN=$RUN
NAME=tgagent
SBC_IP=${TG_AGENT_TEST_IP:-127.202.0.1}
NET=${SBC_IP%.*}
UAS_IP=$NET.2
TRIAL_IP=$NET.9
SBC_PORT=5060
RPC_PORT=5061
UAS_PORT=5070
AGENT=http://$SBC_IP:9180
WORK=$RUN/$NAME-work
DATA=$WORK/data
STATE=$WORK/state
PY=$(python_env)


say "building tollgate-agent and the agreement helper"
build_all
BIN=$CARGO_TARGET_DIR/debug/tollgate-agent
HELPER=$CARGO_TARGET_DIR/debug/examples/agreement

AGENT_PID=
cleanup() {
  if [ -n "$AGENT_PID" ]; then kill "$AGENT_PID" 2>/dev/null || true; wait "$AGENT_PID" 2>/dev/null || true; fi
  scripts/sbc.sh stop "$NAME" 2>/dev/null || true
  scripts/sbc.sh uas-stop "$NAME" 2>/dev/null || true
}
trap cleanup EXIT
cleanup
rm -rf "$WORK"
mkdir -p "$WORK/bodies" "$DATA" "$STATE"

say "test copies of the example tenants (as the agreement test makes them)"
"$HELPER" prepare examples/policies "$WORK/agree" --seed "${TG_AGREE_SEED:-20260101}" >/dev/null
"$PY" - "$WORK/agree/fleet" "$WORK/bodies" "$WORK/agree/geo.txt" "$WORK/geo.mmdb" <<'PY'
import json, os, sys, yaml
from mmdb_writer import MMDBWriter
from netaddr import IPSet
src, out, geo, mmdb = sys.argv[1:5]
for f in sorted(os.listdir(src)):
    p = yaml.safe_load(open(os.path.join(src, f)))
    t = p["tenant"]
    json.dump({"revision": t + "-r1", "policy": p}, open(os.path.join(out, t + ".json"), "w"))
    if t == "acme":
        # r2: +1212 denied (a new, more specific destination rule)
        p2 = json.loads(json.dumps(p))
        p2["destinations"].append({"prefix": "1212", "action": "deny", "rule": "dst:prefix:1212"})
        json.dump({"revision": "acme-r2", "policy": p2}, open(os.path.join(out, "acme-r2.json"), "w"))
        # r3 (staged applies): r2 and +1312 denied
        p3 = json.loads(json.dumps(p2))
        p3["destinations"].append({"prefix": "1312", "action": "deny", "rule": "dst:prefix:1312"})
        json.dump({"revision": "acme-r3", "policy": p3}, open(os.path.join(out, "acme-r3.json"), "w"))
        # bad: a source network the SBC would misread (127.0.0.300 -> .44)
        b = json.loads(json.dumps(p))
        b["sources"]["networks"].append({"cidr": "127.0.0.300/32", "action": "allow", "rule": "src:bad"})
        json.dump({"revision": "acme-bad-net", "policy": b}, open(os.path.join(out, "bad-net.json"), "w"))
        # bad: a window that does not exist
        b = json.loads(json.dumps(p))
        b["destinations"].append({"prefix": "1213", "action": "allow", "rule": "dst:x",
                                  "window": {"name": "no-such-window", "when": "during"}})
        json.dump({"revision": "acme-bad-window", "policy": b}, open(os.path.join(out, "bad-window.json"), "w"))
        # bad: a tree row the mtree loader refuses (non-digit prefix)
        b = json.loads(json.dumps(p))
        b["destinations"].append({"prefix": "12a", "action": "allow", "rule": "dst:x"})
        json.dump({"revision": "acme-bad-prefix", "policy": b}, open(os.path.join(out, "bad-prefix.json"), "w"))
        # bad: malformed (a field of the wrong type, an unknown verdict)
        b = json.loads(json.dumps(p))
        b["destinations"][1]["action"] = "perhaps"
        json.dump({"revision": "acme-bad-verdict", "policy": b}, open(os.path.join(out, "bad-malformed.json"), "w"))
        # bad: the policy of another tenant under acme's path
        json.dump({"revision": "x", "policy": dict(p, tenant="globex")}, open(os.path.join(out, "bad-tenant.json"), "w"))
w = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoIP2-Country",
               languages=["en"], description="tollgate agent test geo")
for line in open(geo):
    net, cc = line.split()
    w.insert_network(IPSet([net]), {"country": {"iso_code": cc, "names": {"en": cc}}})
w.to_db_file(mmdb)
PY

# an EMPTY policy set: every table is its header line alone
"$PY" scripts/sbc-data.py empty "$DATA"
head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$WORK/token"
TOKEN=$(cat "$WORK/token")

api() { # METHOD PATH [curl args...] -> prints "CODE" then the body in $WORK/resp
  local m=$1 p=$2; shift 2
  curl -sS --max-time 120 -o "$WORK/resp" -w '%{http_code}' -X "$m" -H "Authorization: Bearer $TOKEN" "$@" "$AGENT$p"
}
put_tenant() { api PUT "/v1/tenants/$1" -H 'Content-Type: application/json' --data-binary "@$2"; }
stage() { api POST "/v1/tenants/$1/stage" -H 'Content-Type: application/json' --data-binary "@$2"; }
commit() { api POST "/v1/tenants/$1/commit" -H 'Content-Type: application/json' -d "{\"revision\": \"$2\"}"; }
field() { "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2]))' "$WORK/resp" "$1"; }

start_agent() {
  "$BIN" --listen "$SBC_IP:9180" --rpc-url "http://$SBC_IP:$RPC_PORT/RPC" --data-dir "$DATA" \
    --state-dir "$STATE" --token-file "$WORK/token" --cfg "$ROOT/sbc/kamailio/tollgate.cfg" \
    --trial-ip "$TRIAL_IP" --geoip-db "$WORK/geo.mmdb" --reconcile-secs 2 >> "$WORK/agent.log" 2>&1 &
  AGENT_PID=$!
  local i
  for i in $(seq 1 100); do
    if curl -s --max-time 2 -o /dev/null "$AGENT/healthz"; then return 0; fi
    sleep 0.1
  done
  die "the agent did not listen within 10 s ($WORK/agent.log)"
}

# call SRC NUMBER -> "CODE RULE"
call() {
  local src=$1 num=$2 f=$WORK/call-$RANDOM
  printf 'SEQUENTIAL\n%s;RTP/AVP\n' "$num" > "$f.csv"
  timeout 30 sipp "$SBC_IP:$SBC_PORT" -sf sbc/sipp/uac.xml -inf "$f.csv" -i "$src" -p 0 -t u1 -m 1 -d 0 \
    -nostdin -timeout 15s -trace_logs -log_file "$f.log" > /dev/null 2>&1 || true
  awk '/^RESULT/ {print $3, $4; exit}' "$f.log" 2>/dev/null
}
expect_call() { # SRC NUMBER "CODE RULE" what
  local got; got=$(call "$1" "$2")
  if [ "$got" = "$3" ]; then ok "$4: $2 -> $got"; else bad "$4: $2 -> '$got', want '$3'"; fi
}
data_sig() { (cd "$DATA" && stat -c '%n %Y %s' -- * && md5sum -- *) | sort; }
sbc_pid() { scripts/sbc.sh rpc "$NAME" core.psx | tr -d ' \t\n' | sed -n 's/.*"PID":\([0-9]*\),"DSC":"mainprocess.*/\1/p'; }

ACME=127.51.100.20     # acme, allowed network, US
GLOBEX=$(awk -F'\t' '$2 ~ /^globex allowed/ {print $1; exit}' "$WORK/agree/sources.tsv")

say "UAS, SBC with an empty policy set, agent"
TG_UAS_TIMEOUT=600 scripts/sbc.sh uas-start "$NAME" "$UAS_IP" "$UAS_PORT"
TG_RELAY=$UAS_IP:$UAS_PORT TG_GEOIP_DB=$WORK/geo.mmdb TG_RPC_PORT=$RPC_PORT \
  scripts/sbc.sh start "$NAME" "$SBC_IP" "$SBC_PORT" "$DATA"
PID0=$(sbc_pid)
start_agent

say "fail closed before any policy is applied"
expect_call $ACME +12125550100 "403 src:unknown" "no policy yet"
code=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' "$AGENT/healthz")
check "healthz with an empty (consistent) state: $code" [ "$code" = 200 ]

say "authentication and request hygiene"
sig0=$(data_sig)
code=$(curl -s --max-time 10 -o "$WORK/resp" -w '%{http_code}' "$AGENT/v1/state")
check "GET /v1/state without a token: $code" [ "$code" = 401 ]
code=$(curl -s --max-time 10 -o "$WORK/resp" -w '%{http_code}' -X PUT -H "Authorization: Bearer wrong-$TOKEN" \
  --data-binary "@$WORK/bodies/acme.json" "$AGENT/v1/tenants/acme")
check "PUT with a wrong token: $code, body $(tr -d '\n ' < "$WORK/resp")" [ "$code" = 401 ]
check "the 401 does not echo the token" bash -c "! grep -q -- '$TOKEN' '$WORK/resp'"
for path in stage commit; do
  code=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    --data-binary "@$WORK/bodies/acme.json" "$AGENT/v1/tenants/acme/$path")
  check "POST /v1/tenants/acme/$path without a token: $code" [ "$code" = 401 ]
done
code=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$AGENT/metrics")
check "GET /metrics with the token: $code" [ "$code" = 200 ]
# bodies over MAX_BODY (256 MiB): refused by Content-Length before a byte
# of it is read, and refused while reading a chunked one
code=$("$PY" - "$SBC_IP" 9180 "$TOKEN" <<'PY'
import socket, sys
ip, port, token = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.create_connection((ip, port), timeout=10)
s.sendall((f"PUT /v1/tenants/acme HTTP/1.1\r\nHost: {ip}\r\nAuthorization: Bearer {token}\r\n"
           f"Content-Type: application/json\r\nContent-Length: {(256 << 20) + 1}\r\n\r\n").encode())
print(s.recv(64).decode(errors="replace").split(" ")[1])
PY
)
check "a body announced as 256 MiB + 1 byte: $code (before reading it)" [ "$code" = 413 ]
code=$(head -c $(((256 << 20) + 1)) /dev/zero | curl -s --max-time 120 -o "$WORK/resp" -w '%{http_code}' -X PUT \
  -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -H 'Transfer-Encoding: chunked' \
  --data-binary @- "$AGENT/v1/tenants/acme")
check "a chunked body of 256 MiB + 1 byte: $code (while reading it)" [ "$code" = 413 ]
echo '{"revision": "x", "policy": ' > "$WORK/garbage.json"
code=$(put_tenant acme "$WORK/garbage.json")
check "garbage JSON: $code ($(tr -d '\n' < "$WORK/resp" | cut -c1-90))" [ "$code" = 400 ]
check "nothing changed in the data dir" [ "$(data_sig)" = "$sig0" ]
expect_call $ACME +12125550100 "403 src:unknown" "still no policy"

say "PUT the example tenants (test copies)"
warm=0 applied=0
for b in "$WORK"/bodies/*.json; do
  t=$(basename "$b" .json)
  case $t in bad-*|*-r2|*-r3) continue ;; esac
  code=$(put_tenant "$t" "$b")
  if [ "$code" = 200 ]; then
    ok "PUT $t: 200 $("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print("probes", d["probes"], "timings(ms)", {k: round(v) for k, v in d["timingsMs"].items()})' "$WORK/resp")"
    applied=$((applied + 1))
    grep -q '"trialWarm": *true' "$WORK/resp" && warm=$((warm + 1))
  else
    bad "PUT $t: $code $(cat "$WORK/resp")"
  fi
done
check "every apply after the first reloaded the warm trial instance ($warm of $applied)" [ "$warm" = $((applied - 1)) ]
expect_call $ACME +12125550100 "200 dst:national" "acme r1"
[ -n "$GLOBEX" ] && expect_call "$GLOBEX" +442079460000 "$(call "$GLOBEX" +442079460000)" "globex answers" >/dev/null
api GET /v1/state > /dev/null
check "state: every tenant consistent" "$PY" -c '
import json,sys; d=json.load(open(sys.argv[1]))
sys.exit(0 if d["tenants"] and all(t["consistent"] for t in d["tenants"].values()) and len(d["tenants"]) == 8 else 1)' "$WORK/resp"
cp "$WORK/resp" "$WORK/state-full"
api GET /v1/state/summary > /dev/null
check "GET /v1/state/summary: consistent, each tenant's revision as GET /v1/state says" "$PY" -c '
import json,sys; s=json.load(open(sys.argv[1])); f=json.load(open(sys.argv[2]))
want={t: v["revision"] for t, v in f["tenants"].items()}
sys.exit(0 if s["consistent"] is True and s["tenants"] == want and s["blocks"] == f["blocks"] else 1)' "$WORK/resp" "$WORK/state-full"
# the summary's entity tag: an unchanged summary costs a 304 without a body
etag=$(curl -sS --max-time 10 -D - -o /dev/null -H "Authorization: Bearer $TOKEN" "$AGENT/v1/state/summary" | tr -d '\r' | sed -n 's/^[Ee][Tt][Aa][Gg]: //p')
check "GET /v1/state/summary carries an ETag ($etag)" bash -c "printf '%s' '$etag' | grep -Eq '^\"[0-9a-f]{32}\"\$'"
rm -f "$WORK/resp"
code=$(api GET /v1/state/summary -H "If-None-Match: $etag")
check "If-None-Match with that tag: 304 and no body (got $code, $(cat "$WORK/resp" 2>/dev/null | wc -c) bytes)" \
  bash -c "[ '$code' = 304 ] && [ ! -s '$WORK/resp' ]"
code=$(api GET /v1/state/summary -H 'If-None-Match: "0123456789abcdef0123456789abcdef"')
check "If-None-Match with another tag: 200 and the summary (got $code)" bash -c "[ '$code' = 200 ] && grep -q '\"tenants\"' '$WORK/resp'"
SUMMARY_ETAG=$etag

say "the agreement calls through the agent-managed SBC (evaluator vs SBC)"
t0=$(date +%s%N)
while IFS=$'\t' read -r src label; do
  csv=$WORK/agree/calls/$src.csv
  n=$(( $(wc -l < "$csv") - 1 ))
  timeout 300 sipp "$SBC_IP:$SBC_PORT" -sf sbc/sipp/uac.xml -inf "$csv" -i "$src" -p 0 -t u1 \
    -m "$n" -l 1 -r 1000 -d 0 -nostdin -timeout 240s -trace_logs -log_file "$WORK/agree/calls/$src.log" \
    > /dev/null 2>&1 || true
done < "$WORK/agree/sources.tsv"
echo "  calls took $(( ($(date +%s%N) - t0) / 1000000 )) ms"
if "$HELPER" compare "$WORK/agree" > "$WORK/agree.out" 2>&1; then
  ok "agreement: $(grep -E 'agree' "$WORK/agree.out" | tail -1)"
else
  bad "agreement: $(head -5 "$WORK/agree.out")"
fi

say "bad revisions are refused before Kamailio is touched"
PID1=$(sbc_pid)
sig1=$(data_sig)
for b in bad-net bad-window bad-prefix bad-malformed bad-tenant; do
  code=$(put_tenant acme "$WORK/bodies/$b.json")
  reason=$("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print("; ".join(d.get("reasons", [d.get("error","")]))[:160])' "$WORK/resp" 2>/dev/null || true)
  check "$b: $code ($reason)" [ "$code" = 422 ]
done
check "data files (names, mtimes, sizes, contents) unchanged" [ "$(data_sig)" = "$sig1" ]
expect_call $ACME +12125550100 "200 dst:national" "previous decision stays"
api GET /v1/state > /dev/null
check "state still says acme-r1" grep -q '"revision": "acme-r1"' "$WORK/resp"

say "a policy change while long calls are up"
cp -a "$DATA" "$WORK/data-r1"   # stale files for the restart test below
printf 'SEQUENTIAL\n+12125550111;RTP/AVP\n+12125550112;RTP/AVP\n+12125550113;RTP/AVP\n+12125550114;RTP/AVP\n' > "$WORK/long.csv"
timeout 60 sipp "$SBC_IP:$SBC_PORT" -sf sbc/sipp/uac.xml -inf "$WORK/long.csv" -i $ACME -p 0 -t u1 -m 4 -l 4 -r 10 \
  -d 6000 -nostdin -timeout 40s -trace_logs -log_file "$WORK/long.log" > /dev/null 2>&1 &
LONG=$!
sleep 1.5
t0=$(date +%s%N)
code=$(put_tenant acme "$WORK/bodies/acme-r2.json")
check "PUT acme r2 during 4 calls: $code in $(( ($(date +%s%N) - t0) / 1000000 )) ms" [ "$code" = 200 ]
expect_call $ACME +12125550100 "403 dst:prefix:1212" "acme r2, new call"
expect_call $ACME +14155550100 "200 dst:national" "acme r2, other prefix"
wait $LONG || true
check "4 long calls answered: $(grep -c '^RESULT .* 200 ' "$WORK/long.log" 2>/dev/null)" [ "$(grep -c '^RESULT .* 200 ' "$WORK/long.log" 2>/dev/null)" = 4 ]
check "4 long calls ended with BYE 200: $(grep -c '^BYE .* 200' "$WORK/long.log" 2>/dev/null)" [ "$(grep -c '^BYE .* 200' "$WORK/long.log" 2>/dev/null)" = 4 ]
check "Kamailio PID unchanged ($PID0 -> $(sbc_pid))" [ "$(sbc_pid)" = "$PID0" ]

say "blocks"
code=$(api PUT /v1/blocks -H 'Content-Type: application/json' -d '{"key":"acme","expires":0}')
check "PUT /v1/blocks acme: $code" [ "$code" = 200 ]
expect_call $ACME +14155550100 "403 block:tenant" "blocked"
check "tg_block file holds the block" grep -q '^1:acme:0:0:0:0$' "$DATA/tg_block"
code=$(api PUT /v1/blocks -H 'Content-Type: application/json' -d '{"key":"nosuch","expires":0}')
check "block of an unknown tenant: $code" [ "$code" = 422 ]
code=$(api DELETE /v1/blocks/acme)
check "DELETE /v1/blocks/acme: $code" [ "$code" = 200 ]
expect_call $ACME +14155550100 "200 dst:national" "unblocked"

code=$(api GET /v1/state/summary -H "If-None-Match: $SUMMARY_ETAG")
check "the summary's tag from before the changes above: 200 with a new summary (got $code)" \
  bash -c "[ '$code' = 200 ] && grep -q '\"tenants\"' '$WORK/resp'"

say "staged applies: stage checks without touching Kamailio, commit applies"
sig2=$(data_sig)
code=$(commit acme acme-r3)
check "commit of a revision never staged: $code ($(field error))" [ "$code" = 409 ]
code=$(stage acme "$WORK/bodies/bad-prefix.json")
check "stage of a bad revision: $code" [ "$code" = 422 ]
code=$(commit acme acme-bad-prefix)
check "commit of the refused revision: $code" [ "$code" = 409 ]
code=$(stage acme "$WORK/bodies/acme-r3.json")
check "stage acme r3: $code, staged $(field staged), $(field probes) probes" [ "$code" = 200 ] && [ "$(field staged)" = True ]
check "data files unchanged by the stages" [ "$(data_sig)" = "$sig2" ]
expect_call $ACME +13125550100 "200 dst:national" "staged, not committed: r2 in force"
api GET /v1/state > /dev/null
check "state still says acme-r2" grep -q '"revision": "acme-r2"' "$WORK/resp"
code=$(commit acme acme-r9)
check "commit of another revision than the staged one: $code ($(field error))" [ "$code" = 409 ]
code=$(commit acme acme-r3)
check "commit acme r3: $code, revalidated $(field revalidated), readbackHash $(field readbackHash | cut -c1-12)" \
  [ "$code" = 200 ] && [ "$(field revalidated)" = False ] && [ "$(field readbackHash)" != None ]
expect_call $ACME +13125550100 "403 dst:prefix:1312" "acme r3 after the commit"
code=$(commit acme acme-r3)
check "commit of it again: $code" [ "$code" = 409 ]
# a stage made stale by a change of the state (a block) is checked again
code=$(stage acme "$WORK/bodies/acme-r2.json")
check "stage acme r2: $code" [ "$code" = 200 ]
code=$(api PUT /v1/blocks -H 'Content-Type: application/json' -d '{"key":"globex","expires":0}')
check "a block of globex meanwhile: $code" [ "$code" = 200 ]
code=$(commit acme acme-r2)
check "commit acme r2: $code, revalidated $(field revalidated)" [ "$code" = 200 ] && [ "$(field revalidated)" = True ]
expect_call $ACME +13125550100 "200 dst:national" "acme r2 again"
[ -n "$GLOBEX" ] && expect_call "$GLOBEX" +442079460000 "403 block:tenant" "the block of globex stays"
code=$(api DELETE /v1/blocks/globex)
check "DELETE /v1/blocks/globex: $code" [ "$code" = 200 ]
api GET /v1/state > /dev/null
check "state: acme-r2, every tenant consistent" "$PY" -c '
import json,sys; d=json.load(open(sys.argv[1]))
sys.exit(0 if d["tenants"]["acme"]["revision"] == "acme-r2" and all(t["consistent"] for t in d["tenants"].values()) else 1)' "$WORK/resp"
api GET /metrics > /dev/null
check "metrics: $(grep '^tollgate_agent_stages_total' "$WORK/resp")" grep -qx 'tollgate_agent_stages_total 2' "$WORK/resp"

say "agent restart: same state"
code=$(stage acme "$WORK/bodies/acme-r3.json")
check "stage acme r3 before the restart: $code" [ "$code" = 200 ]
api GET /v1/state > /dev/null; cp "$WORK/resp" "$WORK/state-before"
kill "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null || true; AGENT_PID=
start_agent
api GET /v1/state > /dev/null; cp "$WORK/resp" "$WORK/state-after"
check "GET /v1/state identical after the restart" cmp -s "$WORK/state-before" "$WORK/state-after"
code=$(commit acme acme-r3)
check "a stage does not survive the restart: commit $code" [ "$code" = 409 ]

say "the warm trial Kamailio does not outlive the agent"
# processes of this agent's trial instances: their environment names the trial dir
trial_procs() {
  local n=0 p
  for p in $(pgrep -x kamailio); do
    { tr '\0' '\n' < "/proc/$p/environ"; } 2>/dev/null | grep -q "^TG_DB_URL=text://$STATE/trial/" && n=$((n + 1))
  done
  echo $n
}
wait_trial_procs() { # WANT: polls up to 10 s
  local i
  for i in $(seq 1 50); do [ "$(trial_procs)" = "$1" ] && return 0; sleep 0.2; done
  return 1
}
check "no trial Kamailio after the restart (SIGTERM stopped it)" wait_trial_procs 0
code=$(put_tenant acme "$WORK/bodies/acme-r2.json")
check "PUT acme r2 again: $code; a warm trial Kamailio runs ($(trial_procs) processes)" \
  [ "$code" = 200 ] && [ "$(trial_procs)" -gt 0 ]
kill -9 "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null || true; AGENT_PID=
check "after SIGKILL of the agent its trial Kamailio is left ($(trial_procs) processes)" [ "$(trial_procs)" -gt 0 ]
start_agent
check "the restarted agent stopped the one left behind" wait_trial_procs 0

say "Kamailio restarted with stale files (r1): the agent re-applies r2"
scripts/sbc.sh stop "$NAME"
cp -a "$WORK/data-r1/." "$DATA/"
touch "$DATA"/*
TG_RELAY=$UAS_IP:$UAS_PORT TG_GEOIP_DB=$WORK/geo.mmdb TG_RPC_PORT=$RPC_PORT \
  scripts/sbc.sh start "$NAME" "$SBC_IP" "$SBC_PORT" "$DATA"
t0=$(date +%s%N)
fixed=0
for i in $(seq 1 60); do
  api GET /v1/state > /dev/null || true
  if "$PY" -c '
import json,sys; d=json.load(open(sys.argv[1]))
sys.exit(0 if d["tenants"]["acme"]["consistent"] and all(t["consistent"] for t in d["tenants"].values()) else 1)' "$WORK/resp" 2>/dev/null; then
    fixed=1; break
  fi
  sleep 0.5
done
check "consistent again after $(( ($(date +%s%N) - t0) / 1000000 )) ms" [ $fixed = 1 ]
expect_call $ACME +12125550100 "403 dst:prefix:1212" "r2 after the stale restart"
grep 'recovery' "$WORK/agent.log" | tail -2 | sed 's/^/    /'

say "delete a tenant"
src=$(awk -F'\t' '$2 ~ /^initech-open/ {print $1; exit}' "$WORK/agree/sources.tsv")
code=$(api DELETE /v1/tenants/initech-open)
check "DELETE initech-open: $code" [ "$code" = 200 ]
expect_call "$src" +4930123456 "403 src:unknown" "deleted tenant"
code=$(api DELETE /v1/tenants/initech-open)
check "DELETE it again: $code" [ "$code" = 404 ]

say "metrics"
expect_call $ACME +14155550100 "200 dst:national" "a call to count"
api GET /metrics > /dev/null
grep -E '^tollgate_calls_total\{tenant="acme",outcome="allow",rule="dst:national"\}|^tollgate_agent_applies_total|^tollgate_concurrent_calls\{tenant="acme"|^tollgate_agent_last_apply|^tollgate_agent_recoveries' "$WORK/resp" | sed 's/^/    /'
check "metrics count acme's allowed national calls" grep -qE '^tollgate_calls_total\{tenant="acme",outcome="allow",rule="dst:national"\} [1-9]' "$WORK/resp"
grep -E '^tollgate_calls_by_country_total\{tenant="acme"' "$WORK/resp" | sed 's/^/    /'
check "metrics count acme's calls to the US (no dst:country rule names it)" \
  grep -qE '^tollgate_calls_by_country_total\{tenant="acme",country="US"\} [1-9]' "$WORK/resp"
check "the country and class counters are not counted as calls of an outcome \"other\"" \
  bash -c "! grep -q 'outcome=\"other\"' '$WORK/resp'"

say "metrics: calls per class (tollgate_calls_by_class_total), moved by single calls"
# class_samples FILE: the family's samples now; class_call SRC NUMBER "CODE
# RULE" WANT WHAT: one call, and exactly the samples WANT ("LABELS+N ...",
# "none") moved by it
class_samples() { api GET /metrics > /dev/null; grep '^tollgate_calls_by_class_total{' "$WORK/resp" | sort > "$1" || true; }
class_call() {
  local src=$1 num=$2 want=$4 what=$5 moved
  class_samples "$WORK/class-before"
  expect_call "$src" "$num" "$3" "$what"
  class_samples "$WORK/class-after"
  moved=$("$PY" - "$WORK/class-before" "$WORK/class-after" <<'PY'
import sys
a, b = ({l.rsplit(" ", 1)[0].split("{", 1)[1]: float(l.rsplit(" ", 1)[1]) for l in open(f)} for f in sys.argv[1:3])
print(" ".join(f"{{{k}+{b.get(k, 0) - a.get(k, 0):g}" for k in sorted(set(a) | set(b)) if b.get(k, 0) != a.get(k, 0)) or "none")
PY
)
  check "  class counters moved by it: $moved" [ "$moved" = "$want" ]
}
INITECH=$(awk -F'\t' '$2 ~ /^initech allowed/ {print $1; exit}' "$WORK/agree/sources.tsv")
class_call $ACME +14155550100 "200 dst:national" '{tenant="acme",class="national",outcome="allow"}+1' "allowed national call"
class_call $ACME +12469761234 "403 dst:class:premium-rate" '{tenant="acme",class="international",outcome="deny"}+1' \
  "denied premium-rate number (class international: acme's policy names no premium-rate class)"
# initech requires TLS: the rejection comes after the class lookup; +870 is
# of two classes
class_call "$INITECH" +870772123456 "403 crypto:tls" \
  '{tenant="initech",class="international",outcome="deny"}+1 {tenant="initech",class="satellite",outcome="deny"}+1' \
  "initech over UDP to a satellite number"
class_call 127.99.0.1 +14155550100 "403 src:unknown" none "unknown source"
class_call $ACME 911 "200 dst:emergency" none "emergency call"
class_call 127.51.100.66 +14155550100 "403 src:net:127.51.100.66/32" none "denied source"
class_call 127.51.100.21 +14155550100 "403 src:geo" '{tenant="acme",class="national",outcome="deny"}+1' \
  "acme from a geo-denied country"
api GET /metrics > /dev/null
check "class samples: applied tenants, classes of their policy (or other), outcomes allow/deny/limit/error; an allow sample (seeded 0) per class of every applied tenant" \
  "$PY" - "$WORK/resp" "$WORK/bodies" <<'PY'
import json, os, re, sys
text = open(sys.argv[1]).read()
applied = set(re.findall(r'^tollgate_tenant_revision_info\{tenant="([^"]*)"', text, re.M))
classes = {}
for f in os.listdir(sys.argv[2]):
    p = json.load(open(os.path.join(sys.argv[2], f)))["policy"]
    if f == p["tenant"] + ".json" and p["tenant"] in applied:
        classes[p["tenant"]] = {"national", "international"} | {c["class"] for c in p["classes"]}
got = re.findall(r'^tollgate_calls_by_class_total\{tenant="([^"]*)",class="([^"]*)",outcome="([^"]*)"\} \d+$', text, re.M)
bad = [g for g in got if g[0] not in classes or (g[1] not in classes[g[0]] and g[1] != "other")
       or g[2] not in ("allow", "deny", "limit", "error")]
missing = sorted({(t, c) for t, cs in classes.items() for c in cs} - {(t, c) for t, c, o in got if o == "allow"})
lines = text.count("\ntollgate_calls_by_class_total{")
print(f"  {len(got)} samples ({lines} lines), {len(classes)} tenants; bad {bad}; missing {missing}")
sys.exit(0 if got and len(got) == lines and len(classes) == len(applied) and not bad and not missing else 1)
PY
code=$(curl -s --max-time 10 -o "$WORK/resp" -w '%{http_code}' "$AGENT/healthz")
check "healthz at the end: $code" [ "$code" = 200 ]

say "remove every tenant, the last one included (an empty policy set again)"
api GET /v1/state > /dev/null
for t in $("$PY" -c 'import json,sys; print(" ".join(sorted(json.load(open(sys.argv[1]))["tenants"])))' "$WORK/resp"); do
  code=$(api DELETE "/v1/tenants/$t")
  check "DELETE $t: $code" [ "$code" = 200 ]
done
api GET /v1/state > /dev/null
check "no tenant applied" "$PY" -c 'import json,sys; sys.exit(0 if not json.load(open(sys.argv[1]))["tenants"] else 1)' "$WORK/resp"
summary=$(scripts/sbc.sh rpc "$NAME" mtree.summary 2>&1 || true)
held=$(printf '%s' "$summary" | "$PY" -c '
import json, sys
trees = json.load(sys.stdin)["result"]
full = sorted(t["table"] for t in trees if t["item"]["nritems"] > 0)
shards = sum(t["table"].startswith("tollgate-shard-") for t in trees)
print(" ".join(full), "/", shards, "shards")' 2>&1 || true)
check "Kamailio holds no tenant's tree (rows only in the fleet-wide country and dialling trees, 1024 shards empty): $held" \
  [ "$held" = 'tollgate-country tollgate-dial / 1024 shards' ]
expect_call $ACME +14155550100 "403 src:unknown" "acme removed"
code=$(curl -s --max-time 10 -o "$WORK/resp" -w '%{http_code}' "$AGENT/healthz")
check "healthz with an empty policy set: $code" [ "$code" = 200 ]

echo
echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
