#!/usr/bin/env bash
# SBC benchmarks, one run:
#  1. calls/s through tollgate.cfg vs plain.cfg (no policy), the same SIPp
#     load (TG_BENCH_CALLS calls, -d 0) offered at TG_BENCH_RATE_LOW/s (a
#     load that saturates neither) and at TG_BENCH_RATE/s (saturation), with
#     the ratio for each (target >= 0.9), the load average and SIPp's errors
#     by kind; calls/s = 200s / (last 200 - first INVITE, SIPp's clock). The
#     instructions per call, which do not depend on the machine's load:
#     scripts/bench-sbc-instructions.sh;
#  2. the time to apply a 100,000-prefix revision of acme through the agent
#     while ~300 calls/s flow (TG_BENCH_FLOW_S seconds), both ways the agent
#     offers: a one-shot PUT (acme-big), then TG_BENCH_COMMITS staged applies
#     (stage, then commit) alternating acme-big2 (acme-big with 2% of its
#     prefixes flipped) and acme-big. For each: from the call to
#     the new policy enforced (last reload answered), the part during which
#     Kamailio is touched (swap + reload, then + read-back), the answer; the
#     stage's time; and the calls that did not get 200, in total and those
#     whose INVITE was sent during each call (per-call SIPp timestamps).
#     Targets: < 0.5 s, zero failed.
#
#   scripts/bench-sbc.sh
#
# Settings: TG_BENCH_CALLS (default 20000), TG_BENCH_RATE (default 10000),
# TG_BENCH_RATE_LOW (default 2000), TG_BENCH_FLOW_S (default 30),
# TG_BENCH_COMMITS (staged applies in part 2, default 5), TG_SHM_PREFAULT
# (default 1: both SBCs touch their 1024 MB of shm at start, docs/sbc.md),
# TG_BENCH_PREFIXES (default 100000), TG_AGENT_TEST_IP (default
# 127.203.0.1), TG_BENCH_PARTS (`all`, or `apply`: skip part 1). Bounded: timeouts everywhere.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

scripts/sbc-install.sh

RUN=${TOLLGATE_RUN:-/tmp/tollgate-run}
export TOLLGATE_RUN=$RUN
NAME=tgbench
SBC_IP=${TG_AGENT_TEST_IP:-127.203.0.1}
NET=${SBC_IP%.*}
UAS_IP=$NET.2
TRIAL_IP=$NET.9
AGENT=http://$SBC_IP:9180
WORK=$RUN/$NAME-work
CALLS=${TG_BENCH_CALLS:-20000}
RATE=${TG_BENCH_RATE:-10000}
RATE_LOW=${TG_BENCH_RATE_LOW:-2000}
FLOW_S=${TG_BENCH_FLOW_S:-30}
COMMITS=${TG_BENCH_COMMITS:-5}
PREFAULT=${TG_SHM_PREFAULT:-1}
PREFIXES=${TG_BENCH_PREFIXES:-100000}
PARTS=${TG_BENCH_PARTS:-all}
PY=$(python_env)
SRC=127.51.100.20   # acme's allowed network in the test copies

say "building (release): tollgate-agent, agreement and big-policy helpers"
cargo build --quiet --locked --release -p tollgate-agent -p tollgate-kamailio --bin tollgate-agent --example agreement --example big-policy
BIN=$CARGO_TARGET_DIR/release/tollgate-agent

AGENT_PID=
cleanup() {
  if [ -n "$AGENT_PID" ]; then kill "$AGENT_PID" 2>/dev/null || true; wait "$AGENT_PID" 2>/dev/null || true; fi
  scripts/sbc.sh stop "$NAME" 2>/dev/null || true
  scripts/sbc.sh uas-stop "$NAME" 2>/dev/null || true
}
trap cleanup EXIT
cleanup
rm -rf "$WORK"
mkdir -p "$WORK/state"

"$CARGO_TARGET_DIR/release/examples/agreement" prepare examples/policies "$WORK/agree" >/dev/null
"$CARGO_TARGET_DIR/release/examples/big-policy" examples/policies/tenants/acme.tgp "$PREFIXES" > "$WORK/big.yaml"
# bodies: acme's test copy (r1) and the big one with the test copy's
# sources, no limits (the load must not hit them), as acme-big
"$PY" - "$WORK/agree/fleet/acme.yaml" "$WORK/big.yaml" "$WORK" <<'PY'
import json, sys, yaml
small = yaml.safe_load(open(sys.argv[1]))
big = yaml.safe_load(open(sys.argv[2], "rb"))
small["limits"] = []
big["sources"] = small["sources"]
big["limits"] = []
big["crypto"] = small["crypto"]
json.dump({"revision": "acme-r1", "policy": small}, open(sys.argv[3] + "/r1.json", "w"))
json.dump({"revision": "acme-big", "policy": big}, open(sys.argv[3] + "/big.json", "w"))
# acme-big2, for the staged apply: every 50th generated prefix flipped
# (none that the flow's number falls under)
flow = "14155550100"
flipped = 0
for i, d in enumerate(big["destinations"]):
    if d["rule"].startswith("dst:big:") and i % 50 == 0 and not flow.startswith(d["prefix"]):
        d["action"] = "deny" if d["action"] == "allow" else "allow"
        flipped += 1
json.dump({"revision": "acme-big2", "policy": big}, open(sys.argv[3] + "/big2.json", "w"))
json.dump({"revision": "acme-big2"}, open(sys.argv[3] + "/commit-acme-big2.json", "w"))
json.dump({"revision": "acme-big"}, open(sys.argv[3] + "/commit-acme-big.json", "w"))
print("acme-big2:", flipped, "destinations flipped")
print("big policy:", len(big["destinations"]), "destinations,", len(big["classes"]), "class prefixes")
PY

mkdir -p "$WORK/data"
"$PY" scripts/sbc-data.py empty "$WORK/data"
head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$WORK/token"
TOKEN=$(cat "$WORK/token")
TG_UAS_TIMEOUT=900 scripts/sbc.sh uas-start "$NAME" "$UAS_IP" 5070

start_sbc() { # CFG
  TG_CFG=$1 TG_SHM_MB=1024 TG_SHM_PREFAULT=$PREFAULT TG_RELAY=$UAS_IP:5070 scripts/sbc.sh start "$NAME" "$SBC_IP" 5060 "$WORK/data"
}
# call METHOD BODY PATH ANSWER -> HTTP status; the answer in ANSWER
call() { curl -sS --max-time 300 -o "$4" -w '%{http_code}' -X "$1" -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: application/json' --data-binary "@$2" "$AGENT/v1/tenants/acme$3"; }
put() { call PUT "$1" "" "$WORK/resp"; }
# timed LABEL METHOD BODY PATH: one call to the agent during the flow; its
# Unix ms window and answer go to $WORK/windows and $WORK/LABEL.resp
timed() {
  local t0 t1 code
  t0=$(date +%s%N)
  code=$(call "$2" "$3" "$4" "$WORK/$1.resp")
  t1=$(date +%s%N)
  echo "$1 $((t0 / 1000000)) $((t1 / 1000000))" >> "$WORK/windows"
  echo "$1: $code in $(( (t1 - t0) / 1000000 )) ms; load average $(loadavg); agent: $("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d.get("timingsMs", d), "reloaded:", d.get("reloaded"), "revalidated:", d.get("revalidated"))' "$WORK/$1.resp")"
  [ "$code" = 200 ] || die "$1: answered $code"
}

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# The UAC scenario with per-call timestamps (SIPp's clock, ms): "START <call>
# <tick>" when the INVITE is sent and "<call> <tick>" before each RESULT/BYE
sed -e 's|<scenario name="tollgate uac">|&<nop><action><log message="START [call_number] [clock_tick]"/></action></nop>|' \
    -e 's|<log message="RESULT |<log message="[call_number] [clock_tick] RESULT |' \
    -e 's|<log message="BYE |<log message="[call_number] [clock_tick] BYE |' \
    sbc/sipp/uac.xml > "$WORK/uac-timed.xml"

# sipp_errors FILE -> SIPp's error events (-trace_err) counted by kind
sipp_errors() { "$PY" - "$1" <<'PY'
import re, sys
try:
    err = open(sys.argv[1], errors="replace").read()
except OSError:
    err = ""
kinds = {}
for m in re.finditer(r"\d+\.\d+: ([^\n']*?)(?: for)? Call-I[dD][ :]+'?[^'\s]*'?(?:: ([^\n]*))?", err):
    k = (m[1] + (" " + m[2] if m[2] else "")).strip()
    k = re.sub(r"^(Aborting call on unexpected message).*?(while [^,]*), received '([^\n']*).*", r"\1 \2: \3", k)
    k = re.sub(r"\d+-\d+@\S+", "", k)[:120]
    kinds[k] = kinds.get(k, 0) + 1
print("; ".join(f"{n} x {k}" for k, n in sorted(kinds.items(), key=lambda x: -x[1])) or "none")
PY
}

# -recv_timeout: a call whose answer was lost (UDP under saturation) would
# otherwise wait for ever, and SIPp's -timeout only stops new calls: longer
# than Kamailio's fr_inv_timer (60 s), after which it answers 408 itself.
# load LABEL NUMBER CALLS RATE -> calls/s ; counts in $WORK/LABEL.log;
# $WORK/LABEL.t0 = Unix ms just before SIPp starts
load() {
  local label=$1 num=$2 n=$3 rate=$4
  printf 'SEQUENTIAL\n%s;RTP/AVP\n' "$num" > "$WORK/$label.csv"
  local t0; t0=$(date +%s%N)
  echo $((t0 / 1000000)) > "$WORK/$label.t0"
  timeout 600 sipp "$SBC_IP:5060" -sf "$WORK/uac-timed.xml" -inf "$WORK/$label.csv" -i $SRC -p 0 -t u1 \
    -m "$n" -r "$rate" -l 2000 -d 0 -nostdin -timeout 300s -recv_timeout 70s -trace_logs -log_file "$WORK/$label.log" \
    -trace_err -error_file "$WORK/$label.err" > "$WORK/$label.out" 2>&1 || true
  local wall=$(( ($(date +%s%N) - t0) / 1000000 ))
  local ok; ok=$(grep -c ' RESULT .* 200 ' "$WORK/$label.log" 2>/dev/null || true)
  # SIPp's clock: from the first INVITE to the last 200 (a straggler that
  # waits for a lost answer does not stretch it)
  local ms; ms=$("$PY" - "$WORK/$label.log" <<'PY'
import re, sys
first = last = None
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"START \d+ (\d+)", line)
    if m:
        first = int(m[1]) if first is None else min(first, int(m[1]))
    m = re.match(r"\d+ (\d+) RESULT \S+ 200 ", line)
    if m:
        last = int(m[1]) if last is None else max(last, int(m[1]))
print(last - first if first is not None and last is not None else 0)
PY
)
  echo "$label: $n calls offered at $rate/s, $ok x 200, $ms ms from the first INVITE to the last 200 ($wall ms until SIPp ended), $(( ok * 1000 / (ms > 0 ? ms : 1) )) calls/s, load average $(loadavg); SIPp errors: $(sipp_errors "$WORK/$label.err")" >&2
  echo $(( ok * 1000 / (ms > 0 ? ms : 1) ))
}
ratio() { "$PY" -c "print(round($2/max($1,1), 3))"; }

if [ "$PARTS" != apply ]; then
  say "1. calls/s: plain.cfg vs tollgate.cfg ($CALLS calls at $RATE_LOW/s and at $RATE/s)"
  start_sbc sbc/kamailio/plain.cfg
  plain_low=$(load plain-low +14155550100 "$CALLS" "$RATE_LOW")
  plain_sat=$(load plain-sat +14155550100 "$CALLS" "$RATE")
  scripts/sbc.sh stop "$NAME"
fi
start_sbc sbc/kamailio/tollgate.cfg
"$BIN" --listen "$SBC_IP:9180" --rpc-url "http://$SBC_IP:5061/RPC" --data-dir "$WORK/data" \
  --state-dir "$WORK/state" --token-file "$WORK/token" --cfg "$ROOT/sbc/kamailio/tollgate.cfg" \
  --trial-ip "$TRIAL_IP" --trial-shm-mb 1024 --reconcile-secs 30 > "$WORK/agent.log" 2>&1 &
AGENT_PID=$!
for _ in $(seq 1 100); do curl -s --max-time 2 -o /dev/null "$AGENT/healthz" && break; sleep 0.1; done
code=$(put "$WORK/r1.json"); [ "$code" = 200 ] || die "PUT r1: $code $(cat "$WORK/resp")"
if [ "$PARTS" != apply ]; then
  tg_low=$(load tollgate-low +14155550100 "$CALLS" "$RATE_LOW")
  tg_sat=$(load tollgate-sat +14155550100 "$CALLS" "$RATE")
  echo "RESULT calls/s offered $RATE_LOW/s: plain=$plain_low tollgate=$tg_low ratio=$(ratio "$plain_low" "$tg_low")"
  echo "RESULT calls/s offered $RATE/s (saturated): plain=$plain_sat tollgate=$tg_sat ratio=$(ratio "$plain_sat" "$tg_sat")"
fi

say "2. apply a $PREFIXES-prefix revision while ~300 calls/s flow (shm prefaulted: $PREFAULT)"
n=$((300 * FLOW_S))
load flow +14155550100 "$n" 300 > "$WORK/flow.rate" &
FLOW=$!
sleep $((FLOW_S / 6))
echo "load average before the PUT: $(loadavg)"
: > "$WORK/windows"
# one-shot: PUT acme-big (checks, trial, swap, reload, read-back in one call)
timed put PUT "$WORK/big.json" ""
# two-phase: stage (checks and trial; the live SBC untouched), then commit
# (swap, reload, read-back)
for i in $(seq 1 "$COMMITS"); do
  sleep 1
  if [ $((i % 2)) = 1 ]; then rev=acme-big2 body=big2.json; else rev=acme-big body=big.json; fi
  timed "stage-$i" POST "$WORK/$body" /stage
  sleep 0.5
  timed "commit-$i" POST "$WORK/commit-$rev.json" /commit
done
wait $FLOW || true
echo "load average after the flow: $(loadavg)"
# attribution: per call, the INVITE's send time (SIPp clock + its start) vs
# the calls' windows and the instants the agent reports
"$PY" - "$WORK" "$n" <<'PY'
import json, re, sys
w, n = sys.argv[1], int(sys.argv[2])
t0 = int(open(w + "/flow.t0").read())
win = {}
for line in open(w + "/windows"):
    label, a, b = line.split()
    win[label] = (int(a), int(b), json.load(open(f"{w}/{label}.resp")))
start, result, bye = {}, {}, {}
for line in open(w + "/flow.log", errors="replace"):
    m = re.match(r"START (\d+) (\d+)", line)
    if m:
        start[int(m[1])] = int(m[2]); continue
    m = re.match(r"(\d+) (\d+) (RESULT|BYE) \S+ (\S+)", line)
    if m:
        (result if m[3] == "RESULT" else bye)[int(m[1])] = (int(m[2]), m[4])
# SIPp's clock_tick counts ms from its own start; if it looks like Unix ms use it as is
base = 0 if start and min(start.values()) > 10**12 else t0
first = min(start.values()) + base if start else t0
ok = sum(1 for c, (_, code) in result.items() if code == "200")
failed = sorted(c for c in start if c not in result or result[c][1] != "200" or c not in bye)
sipp_failed = re.search(r"Failed call\s*\|\s*\d+\s*\|\s*(\d+)", open(w + "/flow.out", errors="replace").read())
def during(c, a, b):
    return a is not None and b is not None and a <= start[c] + base <= b
def sent(a, b):
    return f"{sum(during(c, a, b) for c in failed)} failed among the {sum(during(c, a, b) for c in start)} sent"
put0, put1, r = win["put"]
print(f"RESULT apply, one-shot PUT: PUT->enforced {r['enforcedUnixMs'] - put0} ms, PUT answered in {put1 - put0} ms, "
      f"Kamailio touched (swap+reload) {r['enforcedUnixMs'] - r['liveStartUnixMs']} ms, "
      f"(swap+reload+read-back) {r['liveEndUnixMs'] - r['liveStartUnixMs']} ms; {sent(put0, put1)} during the PUT")
stages, commits = [], []
for i in range(1, 1000):
    if f"commit-{i}" not in win:
        break
    s0, s1, _ = win[f"stage-{i}"]
    c0, c1, r = win[f"commit-{i}"]
    stages.append(s1 - s0)
    commits.append(r["enforcedUnixMs"] - c0)
    print(f"  staged apply {i} ({r['revision']}): stage answered in {s1 - s0} ms ({sent(s0, s1)} meanwhile); "
          f"commit->enforced {r['enforcedUnixMs'] - c0} ms, commit answered in {c1 - c0} ms, "
          f"Kamailio touched (swap+reload) {r['enforcedUnixMs'] - r['liveStartUnixMs']} ms, "
          f"(swap+reload+read-back) {r['liveEndUnixMs'] - r['liveStartUnixMs']} ms, revalidated {r.get('revalidated')}; "
          f"{sent(c0, c1)} during the commit")
def mid(v):
    v = sorted(v)
    return v[len(v) // 2]
if commits:
    print(f"RESULT apply, staged ({len(commits)} revisions): commit->enforced median {mid(commits)} ms "
          f"(min {min(commits)}, max {max(commits)}); stage, the checks before it, median {mid(stages)} ms "
          f"(min {min(stages)}, max {max(stages)})")
last = max(b for _, b, _ in win.values())
if start and last > max(start.values()) + base:
    print(f"WARNING: the last call to the agent ended {last - max(start.values()) - base} ms after the flow's last INVITE: raise TG_BENCH_FLOW_S")
print(f"RESULT flow: {n} calls offered, {len(start)} INVITEs sent, {ok} x 200, "
      f"{len(failed)} failed (no 200 or no BYE 200; SIPp's failed-call count {sipp_failed[1] if sipp_failed else '?'})")
# why SIPp gave up on each failed call: its error file (-trace_err), first
# event per call (an abort, with the message received and the scenario index)
why = {}
try:
    err = open(w + "/flow.err", errors="replace").read()
except OSError:  # SIPp writes it only when there was an error
    err = ""
for m in re.finditer(r"(Aborting call on [^\n']*?|[^\n:]*?)(?: for)? Call-I[dD][ :]+'?(\d+)-[^'\s]*'?(?:: ([^\n]*))?", err):
    why.setdefault(int(m[2]), " ".join(x for x in (m[1], m[3] or "") if x).strip()[:140])
causes = {}
for c in failed:
    k = re.sub(r"\d+-\d+@\S+", "", why.get(c, "no SIPp error recorded"))
    k = re.sub(r"^(Aborting call on unexpected message).*?(while [^,]*), received '([^\n']*).*", r"\1 \2: \3", k)
    causes[k] = causes.get(k, 0) + 1
print(f"RESULT flow failures: {len(failed)}" + "".join(f"; {n} x {k}" for k, n in sorted(causes.items(), key=lambda x: -x[1])))
for c in failed[:30]:
    res = result.get(c)
    print(f"  failed call {c}: INVITE at {start[c] + base - put0:+d} ms from the PUT "
          f"({start[c] + base - first} ms into the run of {(max(start.values()) - min(start.values())) if start else 0} ms), "
          f"result {res[1] if res else 'none'}, BYE {'200' if c in bye else 'none'}; {why.get(c, '')}")
PY
say "3. mtree.reload alone of the $PREFIXES-prefix table (no calls, tlsf, TG_SHM_MB=1024)"
rpc() { curl -sS --max-time 60 -H 'Content-Type: application/json' \
  --data "{\"jsonrpc\":\"2.0\",\"method\":\"$1\",\"params\":[${2:-}],\"id\":1}" "http://$SBC_IP:5061/RPC"; }
shm() { rpc core.shmmem | "$PY" -c 'import json,sys; r=json.load(sys.stdin)["result"]; print("shm used %d MB, real_used %d MB, max_used %d MB of %d MB" % tuple(int(r[k]) >> 20 for k in ("used", "real_used", "max_used", "total")))'; }
trees() { rpc mtree.summary | "$PY" -c 'import json,sys; print(", ".join("%s %s items %d MB" % (t["table"], t["item"]["nritems"], int(t["item"]["memsize"]) >> 20) for t in json.load(sys.stdin)["result"]))'; }
echo "before: $(shm); trees: $(trees)"
for i in 1 2 3; do
  s0=$(date +%s%N); out=$(rpc mtree.reload '""' | tr -d '\n\t'); s1=$(date +%s%N)
  echo "mtree.reload #$i: $(( (s1 - s0) / 1000000 )) ms ($out); load average $(loadavg); after: $(shm)"
done
curl -sS --max-time 120 -H "Authorization: Bearer $TOKEN" "$AGENT/v1/state" | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print("state:", {t: (v["revision"], v["consistent"]) for t, v in d["tenants"].items()}, "lastError:", d["lastError"])'
