#!/usr/bin/env bash
# SBC benchmarks, one run:
#  1. calls/s through tollgate.cfg vs plain.cfg (no policy) with the same
#     SIPp load (TG_BENCH_CALLS calls, -d 0, up to TG_BENCH_RATE/s), and the
#     ratio (target >= 0.9);
#  2. the time to apply a 100,000-prefix revision of acme through the agent
#     while ~300 calls/s flow (TG_BENCH_FLOW_S seconds), with the number of
#     calls that did not get 200 (target: < 0.5 s, zero failed).
#
#   scripts/bench-sbc.sh
#
# Settings: TG_BENCH_CALLS (default 20000), TG_BENCH_RATE (default 10000),
# TG_BENCH_FLOW_S (default 20), TG_BENCH_PREFIXES (default 100000),
# TG_AGENT_TEST_IP (default 127.203.0.1). Bounded: timeouts everywhere.
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
FLOW_S=${TG_BENCH_FLOW_S:-20}
PREFIXES=${TG_BENCH_PREFIXES:-100000}
PY=$(python_env)
SRC=127.51.100.20   # acme's allowed network in the test copies

say "building (release): tollgate-agent, agreement and big-policy helpers"
cargo build --quiet --locked --release -p tollgate-operator --bin tollgate-agent --example agreement --example big-policy
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
print("big policy:", len(big["destinations"]), "destinations,", len(big["classes"]), "class prefixes")
PY

mkdir -p "$WORK/data"
for f in sbc/testdata/*; do
  n=$(basename "$f")
  case $n in make-geoip.py) ;; version) cp "$f" "$WORK/data/$n" ;; *) head -1 "$f" > "$WORK/data/$n" ;; esac
done
head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$WORK/token"
TOKEN=$(cat "$WORK/token")
TG_UAS_TIMEOUT=900 scripts/sbc.sh uas-start "$NAME" "$UAS_IP" 5070

start_sbc() { # CFG
  TG_CFG=$1 TG_SHM_MB=1024 TG_RELAY=$UAS_IP:5070 scripts/sbc.sh start "$NAME" "$SBC_IP" 5060 "$WORK/data"
}
put() { curl -sS --max-time 300 -o "$WORK/resp" -w '%{http_code}' -X PUT -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: application/json' --data-binary "@$1" "$AGENT/v1/tenants/acme"; }

# load LABEL NUMBER CALLS RATE -> calls/s ; counts in $WORK/LABEL.log
load() {
  local label=$1 num=$2 n=$3 rate=$4
  printf 'SEQUENTIAL\n%s;RTP/AVP\n' "$num" > "$WORK/$label.csv"
  local t0; t0=$(date +%s%N)
  timeout 600 sipp "$SBC_IP:5060" -sf sbc/sipp/uac.xml -inf "$WORK/$label.csv" -i $SRC -p 0 -t u1 \
    -m "$n" -r "$rate" -l 2000 -d 0 -nostdin -timeout 300s -trace_logs -log_file "$WORK/$label.log" \
    > "$WORK/$label.out" 2>&1 || true
  local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  local ok; ok=$(grep -c '^RESULT .* 200 ' "$WORK/$label.log" 2>/dev/null || true)
  echo "$label: $n calls, $ok x 200, $ms ms, $(( ok * 1000 / (ms > 0 ? ms : 1) )) calls/s" >&2
  echo $(( ok * 1000 / (ms > 0 ? ms : 1) ))
}

say "1. calls/s: plain.cfg vs tollgate.cfg ($CALLS calls, up to $RATE/s)"
start_sbc sbc/kamailio/plain.cfg
plain=$(load plain +14155550100 "$CALLS" "$RATE")
scripts/sbc.sh stop "$NAME"
start_sbc sbc/kamailio/tollgate.cfg
"$BIN" --listen "$SBC_IP:9180" --rpc-url "http://$SBC_IP:5061/RPC" --data-dir "$WORK/data" \
  --state-dir "$WORK/state" --token-file "$WORK/token" --cfg "$ROOT/sbc/kamailio/tollgate.cfg" \
  --trial-ip "$TRIAL_IP" --trial-shm-mb 1024 --reconcile-secs 30 > "$WORK/agent.log" 2>&1 &
AGENT_PID=$!
for _ in $(seq 1 100); do curl -s --max-time 2 -o /dev/null "$AGENT/healthz" && break; sleep 0.1; done
code=$(put "$WORK/r1.json"); [ "$code" = 200 ] || die "PUT r1: $code $(cat "$WORK/resp")"
tg=$(load tollgate +14155550100 "$CALLS" "$RATE")
echo "RESULT calls/s plain=$plain tollgate=$tg ratio=$("$PY" -c "print(round($tg/max($plain,1), 3))")"

say "2. apply a $PREFIXES-prefix revision while ~300 calls/s flow"
n=$((300 * FLOW_S))
load flow +14155550100 "$n" 300 > "$WORK/flow.rate" &
FLOW=$!
sleep $((FLOW_S / 3))
t0=$(date +%s%N)
code=$(put "$WORK/big.json")
wall=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "PUT acme-big: $code in $wall ms; agent timings: $("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d.get("timingsMs", d))' "$WORK/resp")"
wait $FLOW || true
got=$(grep -c '^RESULT' "$WORK/flow.log" 2>/dev/null || true)
okc=$(grep -c '^RESULT .* 200 ' "$WORK/flow.log" 2>/dev/null || true)
echo "RESULT flow: $n calls sent, $got results, $okc x 200, $((n - okc)) failed; $(grep -v '^RESULT .* 200 ' "$WORK/flow.log" | grep '^RESULT' | awk '{print $3, $4}' | sort | uniq -c | tr '\n' ';')"
curl -sS --max-time 120 -H "Authorization: Bearer $TOKEN" "$AGENT/v1/state" | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print("state:", {t: (v["revision"], v["consistent"]) for t, v in d["tenants"].items()}, "lastError:", d["lastError"])'
