#!/usr/bin/env bash
# Thousands of tenants on one SBC (issue 19): one real Kamailio and its
# agent (release build) filled with copies of the compiled `acme` example
# (about 1,300 tree rows each, its own networks), and at each size the cost
# of one tenant's change, which must not grow with the tenants held.
#
#   scripts/bench-tenants.sh
#
# At each size of TG_BENCH_SIZES (default 1,100,1000,3000) it prints the
# median of TG_BENCH_REPEAT (default 3) runs of: one tenant's PUT of a new
# revision, its stage + commit, its DELETE (and PUT back), a block set and
# lifted; Kamailio's shared memory in use and the agent's RSS. At the size
# TG_BENCH_BASE (default 1000) it applies a base change to every tenant
# (batches of TG_BENCH_BATCH, default 100) while SIPp offers calls at
# TG_BENCH_RATE (default 300) per second from one tenant, and reports the
# failed calls and a decision the change flips, checked before and after.
# The SBC's fill between sizes uses the same batches. Wall-clock figures
# on a shared machine: rerun to compare; the ratio "at N / at 1" is the
# figure that matters (target: within 1.5x at 3,000 tenants).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

SIZES=${TG_BENCH_SIZES:-1,100,1000,3000}
REPEAT=${TG_BENCH_REPEAT:-3}
BASE_AT=${TG_BENCH_BASE:-1000}
BATCH=${TG_BENCH_BATCH:-100}
RATE=${TG_BENCH_RATE:-300}
MAX=$(tr ',' '\n' <<< "$SIZES" | sort -n | tail -1)
export TOLLGATE_RUN=${TOLLGATE_RUN:-/tmp/tollgate-run}
NAME=tenants-bench
SBC_IP=127.0.88.1
UAS_IP=127.0.88.2
TRIAL_IP=127.0.88.3
AGENT=http://$SBC_IP:9180
WORK=$TOLLGATE_RUN/$NAME-work
PY=$(python_env)
# about 1.4 MB of shared memory per acme-sized tenant, and room to reload
SHM=$(( 512 + MAX * 16 / 10 ))

command -v sipp > /dev/null || die "sipp is needed (scripts/sbc-install.sh)"
scripts/sbc-install.sh > /dev/null
cargo build --quiet --locked --release -p tollgate-agent -p tollgate-cli --bin tollgate-agent --bin tollgate
BIN=$CARGO_TARGET_DIR/release
rm -rf "$WORK"; mkdir -p "$WORK/bodies" "$WORK/state"; : > "$WORK/shards.tsv"
cleanup() {
  [ -n "${AGENT_PID:-}" ] && kill "$AGENT_PID" 2>/dev/null && wait "$AGENT_PID" 2>/dev/null
  scripts/sbc.sh stop "$NAME" > /dev/null 2>&1 || true
  scripts/sbc.sh uas-stop "$NAME" > /dev/null 2>&1 || true
}
trap cleanup EXIT

say "tenants: $MAX copies of examples/policies/tenants/acme.tgp (compiled), revisions A and B"
(cd examples/policies && "$BIN/tollgate" compile tenants/acme.tgp) > "$WORK/acme.yaml"
"$PY" - "$WORK" "$MAX" <<'PY'
import copy, json, sys, yaml
w, n = sys.argv[1], int(sys.argv[2])
doc = yaml.safe_load(open(w + "/acme.yaml"))
base = doc["spec"]["policy"]
def variant(i, rev):
    p = copy.deepcopy(base)
    name = "t%05d" % i
    p["tenant"] = name
    a, b = divmod(i, 256)
    nets = p["sources"]["networks"]
    # 127.100+a.b.0/24: SIPp can send from it (loopback)
    cidrs = ["127.%d.%d.0/24" % (100 + a, b), "127.%d.%d.66/32" % (100 + a, b),
             "10.%d.%d.10/32" % (a, b), "10.%d.%d.11/32" % (a, b), "2001:db8:%x::/48" % i]
    for net, c in zip(nets, cidrs):
        net["cidr"] = c
    if i == 1:
        # the tenant the calls during the base change come from: no limits
        # (acme's base limits calls per minute)
        p["limits"] = []
        p["responses"] = [r for r in p["responses"] if r["trigger"]["kind"] != "breach"]
    if rev == "B":
        # the base change: New Jersey's 201 denied
        for d in p["destinations"]:
            if d["prefix"] == "1201":
                d["action"] = "deny"
                d["rule"] = "dst:prefix:1201"
    return {"tenant": name, "revision": "%s-%s" % (name, rev), "policy": p}
with open(w + "/tenants.jsonl", "w") as f:
    for i in range(n):
        f.write(json.dumps(variant(i, "A")) + "\n")
with open(w + "/tenants-b.jsonl", "w") as f:
    for i in range(n):
        f.write(json.dumps(variant(i, "B")) + "\n")
for rev in "AB":
    v = variant(0, rev)
    json.dump({"revision": v["revision"], "policy": v["policy"]}, open("%s/bodies/t00000-%s.json" % (w, rev), "w"))
PY

"$BIN/tollgate-agent" --init-data "$WORK/data" 2> /dev/null
head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$WORK/token"
TOKEN=$(cat "$WORK/token")
TG_UAS_TIMEOUT=3600 scripts/sbc.sh uas-start "$NAME" "$UAS_IP" 5070 > /dev/null
TG_SHM_MB=$SHM TG_RELAY=$UAS_IP:5070 scripts/sbc.sh start "$NAME" "$SBC_IP" 5060 "$WORK/data" > /dev/null
"$BIN/tollgate-agent" --listen "$SBC_IP:9180" --rpc-url "http://$SBC_IP:5061/RPC" --data-dir "$WORK/data" \
  --state-dir "$WORK/state" --token-file "$WORK/token" --cfg "$ROOT/sbc/kamailio/tollgate.cfg" \
  --trial-ip "$TRIAL_IP" --trial-shm-mb "$(( 256 + BATCH * 2 ))" --reconcile-secs 5 > "$WORK/agent.log" 2>&1 &
AGENT_PID=$!
for _ in $(seq 1 100); do curl -s --max-time 2 -o /dev/null "$AGENT/healthz" && break; sleep 0.1; done

# api METHOD PATH [BODY] -> prints "<status> <ms>"; the answer in $WORK/resp
api() {
  local t0 code; t0=$(date +%s%N)
  code=$(curl -sS --max-time 900 -o "$WORK/resp" -w '%{http_code}' -X "$1" -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/json' ${3:+--data-binary "@$3"} "$AGENT$2")
  echo "$code $(( ($(date +%s%N) - t0) / 1000000 ))"
}
ok() { [ "${1%% *}" = 200 ] || die "$2: answered ${1%% *}: $(head -c 400 "$WORK/resp")"; echo "${1#* }"; }
# fill FILE FROM TO: tenants [FROM, TO) of FILE's lines, in batches; prints ms
fill() {
  local file=$1 from=$2 to=$3 total=0 i ms
  for (( i = from; i < to; i += BATCH )); do
    "$PY" - "$file" "$i" "$(( i + BATCH < to ? i + BATCH : to ))" > "$WORK/batch.json" <<'PY'
import json, sys
f, a, b = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
lines = open(f).read().splitlines()[a:b]
print(json.dumps({"changes": [json.loads(l) for l in lines]}))
PY
    ms=$(ok "$(api POST /v1/batch "$WORK/batch.json")" "batch $i")
    total=$(( total + ms ))
    "$PY" - "$WORK/resp" "$WORK/shards.tsv" >&2 <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
t = d["timingsMs"]
with open(sys.argv[2], "a") as f:
    for name, v in d["tenants"].items():
        f.write("%s\t%s\n" % (name, v.get("shard")))
shards = len({v.get("shard") for v in d["tenants"].values()})
print("  batch of %d (%d shards): %d ms (checks %d, trial %d of which start %d, swap %d, reload %d, read-back %d), %d probes"
      % (len(d["tenants"]), shards, t["total"], t["checks"], t["trial"], t["trialStart"], t["swap"], t["reload"], t["readback"], d["probes"]))
PY
  done
  echo "$total"
}
# by_shard SRC DEST N: the first N tenants of $WORK/SRC, ordered by the shard
# the agent reported for each ($WORK/shards.tsv, the last word wins), into
# $WORK/DEST: batches of consecutive lines then cover whole shards
by_shard() {
  "$PY" - "$WORK" "$1" "$2" "$3" <<'PY'
import json, sys
w, src, dest, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
shard = {}
for line in open(w + "/shards.tsv"):
    t, s = line.split()
    shard[t] = int(s)
lines = open(w + "/" + src).read().splitlines()[:n]
lines.sort(key=lambda l: (shard[json.loads(l)["tenant"]], l))
open(w + "/" + dest, "w").write("\n".join(lines) + "\n")
PY
}
median() { tr ' ' '\n' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# in MB as Kamailio counts them (in bytes its 32-bit counters wrap at 4 GB)
shm_mb() { scripts/sbc.sh rpc "$NAME" core.shmmem s:m | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["result"]["real_used"])'; }
rss_mb() { echo $(( $(awk '/VmRSS/ {print $2}' "/proc/$1/status") / 1024 )); }
# one SIPp call from t00000's network: "<code> <rule>"
probe() {
  printf 'SEQUENTIAL\n%s;RTP/AVP\n' "$1" > "$WORK/probe.csv"
  sipp "$SBC_IP:5060" -sf sbc/sipp/uac.xml -inf "$WORK/probe.csv" -i 127.100.0.20 -p 0 -t u1 -m 1 -nostdin \
    -timeout 20s -trace_logs -log_file "$WORK/probe.log" > /dev/null 2>&1 || true
  awk '/^RESULT/ {print $3, $4}' "$WORK/probe.log"; rm -f "$WORK/probe.log"
}

held=0
declare -A RESULT
for n in ${SIZES//,/ }; do
  say "$n tenants"
  if (( n > held )); then
    ms=$(fill "$WORK/tenants.jsonl" "$held" "$n")
    echo "filled $held -> $n tenants in batches of $BATCH: $ms ms"
    held=$n
  fi
  puts=() stagecommit=() dels=() blocks=()
  for r in $(seq 1 "$REPEAT"); do
    v=$([ $((r % 2)) = 1 ] && echo B || echo A)
    puts+=("$(ok "$(api PUT /v1/tenants/t00000 "$WORK/bodies/t00000-$v.json")" "PUT")")
    cp "$WORK/resp" "$WORK/put.json"
    v=$([ "$v" = B ] && echo A || echo B)
    s=$(ok "$(api POST /v1/tenants/t00000/stage "$WORK/bodies/t00000-$v.json")" "stage")
    printf '{"revision": "t00000-%s"}' "$v" > "$WORK/commit.json"
    c=$(ok "$(api POST /v1/tenants/t00000/commit "$WORK/commit.json")" "commit")
    stagecommit+=("$(( s + c ))")
    dels+=("$(ok "$(api DELETE /v1/tenants/t00000)" "DELETE")")
    ok "$(api PUT /v1/tenants/t00000 "$WORK/bodies/t00000-A.json")" "PUT back" > /dev/null
    echo '{"key": "t00000", "expires": 0}' > "$WORK/block.json"
    b1=$(ok "$(api PUT /v1/blocks "$WORK/block.json")" "block")
    b2=$(ok "$(api DELETE /v1/blocks/t00000)" "unblock")
    blocks+=("$(( b1 + b2 ))")
  done
  KPID=$(cat "$TOLLGATE_RUN/$NAME/pid")
  line="PUT $(echo "${puts[*]}" | median) ms, stage+commit $(echo "${stagecommit[*]}" | median) ms, DELETE $(echo "${dels[*]}" | median) ms, block set+lifted $(echo "${blocks[*]}" | median) ms; Kamailio shm in use $(shm_mb) MB, agent RSS $(rss_mb "$AGENT_PID") MB"
  RESULT[$n]=$line
  echo "RESULT $n tenants: $line"
  "$PY" -c 'import json,sys; t=json.load(open(sys.argv[1]))["timingsMs"]; print("  the last PUT in the agent: " + ", ".join("%s %d" % (k, v) for k, v in t.items() if k != "trialWarm"))' "$WORK/put.json"
  if [ "$n" = "$BASE_AT" ]; then
    say "base change to all $n tenants (batches of $BATCH) with SIPp at $RATE calls/s"
    before=$(probe +12015550100); echo "before: +1 201 555 0100 from t00000 -> $before"
    [ "${before%% *}" = 200 ] || die "before the base change the call should pass: $before"
    printf 'SEQUENTIAL\n+14155550100;RTP/AVP\n' > "$WORK/flow.csv"
    sipp "$SBC_IP:5060" -sf sbc/sipp/uac.xml -inf "$WORK/flow.csv" -i 127.100.1.21 -p 0 -t u1 -r "$RATE" -l 2000 -d 0 \
      -nostdin -timeout 1800s -recv_timeout 70s -trace_logs -log_file "$WORK/flow.log" > "$WORK/flow.out" 2>&1 &
    SIPP=$!
    sleep 2
    # the change in batches that each cover whole shards (the shards the
    # agent reported), so each shard is reloaded once
    ok "$(api GET '/v1/state?tenant=t00000')" "state" > /dev/null
    "$PY" -c 'import json,sys; print("t00000\t%s" % json.load(open(sys.argv[1]))["tenants"]["t00000"]["shard"])' "$WORK/resp" >> "$WORK/shards.tsv"
    by_shard tenants-b.jsonl base.jsonl "$n"
    t0=$(date +%s%N)
    ms=$(fill "$WORK/base.jsonl" 0 "$n")
    wall=$(( ($(date +%s%N) - t0) / 1000000 ))
    sleep 2; kill -INT "$SIPP" 2>/dev/null || true; wait "$SIPP" 2>/dev/null || true
    after=$(probe +12015550100); echo "after: +1 201 555 0100 from t00000 -> $after"
    total=$(grep -c '^RESULT' "$WORK/flow.log" || true)
    good=$(grep -c '^RESULT +14155550100 200 ' "$WORK/flow.log" || true)
    echo "RESULT base change: $n tenants in $(( n / BATCH )) batches: ${wall} ms ($ms ms in the agent); SIPp: $total calls answered during it, $good x 200, $(( total - good )) not 200; decision before $before, after $after"
    [ "${after%% *}" = 403 ] || echo "WARNING: after the base change the call should be refused: $after"
    by_shard tenants.jsonl back.jsonl "$n"
    fill "$WORK/back.jsonl" 0 "$n" > /dev/null
  fi
done
say "summary (tollgate-agent release build, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg))"
for n in ${SIZES//,/ }; do echo "$n tenants: ${RESULT[$n]}"; done
