#!/usr/bin/env bash
# Fleet-wide concurrency (docs/sbc.md "Fleet-wide limits"), measured in one
# run on real Kamailio + tollgate-agent + SIPp:
#  1. propagation: TG_BENCH_PROBES calls, one at a time, rotated over the
#     three SBCs of a DMQ fleet; a poller reads every SBC's dialog profile
#     over JSON-RPC in turn and prints, per call, how long after the SBC
#     that took the call counts it the last peer counts it too (and the same
#     for the call's end): p50, p90, p99, max. Resolution: one poll round
#     (printed).
#  2. cost: the same SIPp load (TG_BENCH_CALLS calls, -d 0, at
#     TG_BENCH_RATE/s) through SBC 1 of the DMQ fleet and through SBC 1 of a
#     fleet without DMQ, alternated TG_BENCH_ROUNDS times; for each, the CPU
#     seconds Kamailio spent per call on the SBC that took the calls (and,
#     with DMQ, on each peer that received them), from /proc. Capacity on one
#     core goes as 1 / CPU per call, so the ratio off/on of CPU per call is
#     the ratio of calls/s on vs off (target >= 0.9).
#
#   scripts/bench-fleetwide.sh
#
# Settings: TG_BENCH_PROBES (default 60), TG_BENCH_CALLS (default 3000),
# TG_BENCH_RATE (default 300), TG_BENCH_ROUNDS (default 2).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

scripts/sbc-install.sh

RUN=${TOLLGATE_RUN:-/tmp/tollgate-run}
export TOLLGATE_RUN=$RUN
WORK=$RUN/tgbenchfw-work
PY=$(python_env)
ON=tgbenchfwon
OFF=tgbenchfwoff
NET_ON=127.0.208
NET_OFF=127.0.209

build_all
export TG_AGENT_BIN=$CARGO_TARGET_DIR/debug/tollgate-agent
TOLLGATE=$CARGO_TARGET_DIR/debug/tollgate

cleanup() {
  scripts/fleet.sh stop "$ON" >/dev/null 2>&1 || true
  scripts/fleet.sh stop "$OFF" >/dev/null 2>&1 || true
}
trap cleanup EXIT
cleanup
rm -rf "$WORK"
mkdir -p "$WORK/policies"

cat > "$WORK/policies/fwbench.tgp" <<'EOF'
tenant fwbench
home US
zone UTC
destinations {
  national: allow
}
sources {
  allow 127.61.3.0/24
}
limits {
  concurrent: critical 100000
}
EOF
"$TOLLGATE" compile "$WORK/policies" -o "$WORK/compiled" >/dev/null
"$PY" - "$WORK/compiled/fwbench.yaml" "$WORK/fwbench.json" <<'PY'
import json, sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
json.dump({"revision": "fwbench-r1", "policy": doc["spec"]["policy"]}, open(sys.argv[2], "w"))
PY

start_fleet() { # NAME NET DMQ
  TG_FLEET_NET=${2##*.} TG_FLEET_DMQ=$3 TG_SHM_MB=512 scripts/fleet.sh start "$1" 3 > /dev/null
  local i code token; token=$(cat "$RUN/$1/token")
  for i in 1 2 3; do
    code=$(curl -s --max-time 120 -o /dev/null -w '%{http_code}' -X PUT -H "Authorization: Bearer $token" \
      -H 'Content-Type: application/json' --data-binary "@$WORK/fwbench.json" "http://$2.$i:9180/v1/tenants/fwbench")
    [ "$code" = 200 ] || die "PUT fwbench to $2.$i: $code"
  done
}
say "two fleets of 3: $ON (DMQ, $NET_ON.x) and $OFF (no DMQ, $NET_OFF.x)"
start_fleet "$ON" "$NET_ON" 1
start_fleet "$OFF" "$NET_OFF" 0
sleep 2

"$PY" - "$ROOT" "$RUN" "$WORK" <<'PY'
import http.client, json, os, statistics, subprocess, sys, time
root, run, work = sys.argv[1:4]
PROBES = int(os.environ.get("TG_BENCH_PROBES", "60"))
CALLS = int(os.environ.get("TG_BENCH_CALLS", "3000"))
RATE = int(os.environ.get("TG_BENCH_RATE", "300"))
ROUNDS = int(os.environ.get("TG_BENCH_ROUNDS", "2"))
NET_ON, NET_OFF = "127.0.208", "127.0.209"
UAC = os.path.join(root, "sbc/sipp/uac.xml")

class Rpc:
    def __init__(self, net, i):
        self.c = http.client.HTTPConnection(f"{net}.{i}", 5101 + 10 * i, timeout=5)
    def call(self, method, params):
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        self.c.request("POST", "/RPC", body, {"Content-Type": "application/json"})
        return json.loads(self.c.getresponse().read()).get("result")
    def size(self):
        return self.call("dlg.profile_get_size", ["tg_t", "fwbench"])

def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]

def sipp(net, i, src, calls, rate, hold_ms, log):
    csv = os.path.join(work, "n.csv")
    with open(csv, "w") as f:
        f.write("SEQUENTIAL\n+12125550100;RTP/AVP\n")
    return subprocess.Popen(
        ["sipp", f"{net}.{i}:{5100 + 10 * i}", "-sf", UAC, "-inf", csv, "-i", src, "-p", "0", "-t", "u1",
         "-m", str(calls), "-r", str(rate), "-l", str(max(calls, 1)), "-d", str(hold_ms), "-nostdin",
         "-timeout", "120s", "-trace_logs", "-log_file", log],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

# 1. propagation
rpcs = [Rpc(NET_ON, i) for i in (1, 2, 3)]
up, down, rounds = [], [], []
for k in range(PROBES):
    o = k % 3
    p = sipp(NET_ON, o + 1, f"127.61.3.{o + 1}", 1, 1, 700, os.path.join(work, "probe.log"))
    for want, out in ((1, up), (0, down)):
        seen = [None, None, None]
        t_end = time.monotonic() + 10
        while None in seen and time.monotonic() < t_end:
            t0 = time.monotonic()
            for j, r in enumerate(rpcs):
                if seen[j] is None and r.size() == want:
                    seen[j] = time.monotonic()
            rounds.append(time.monotonic() - t0)
        if None in seen:
            sys.exit(f"probe {k}: the count {want} did not reach every SBC within 10 s: {seen}")
        out.append(max(s - seen[o] for s in seen) * 1000)
    p.wait(timeout=30)
print(f"propagation over DMQ, {PROBES} calls rotated over 3 SBCs (poll round p50 {statistics.median(rounds) * 1000:.2f} ms):")
for name, xs in (("call up", up), ("call ended", down)):
    print(f"  {name:10} last peer after the SBC that took it: p50 {pct(xs, 50):.1f} ms, p90 {pct(xs, 90):.1f} ms, "
          f"p99 {pct(xs, 99):.1f} ms, max {max(xs):.1f} ms")

# 2. cost per call
sys.path.insert(0, os.path.join(root, "scripts"))
from proc_cpu import cpu_seconds

def kamailio_pid(name, i):
    return int(open(os.path.join(run, f"{name}-{i}", "pid")).read())

def load(name, net):
    pids = {i: kamailio_pid(name, i) for i in (1, 2, 3)}
    before = {i: cpu_seconds(pids[i]) for i in pids}
    log = os.path.join(work, f"load-{name}.log")
    if os.path.exists(log):
        os.remove(log)
    t0 = time.monotonic()
    p = sipp(net, 1, "127.61.3.9", CALLS, RATE, 0, log)
    p.wait(timeout=CALLS / RATE + 120)
    wall = time.monotonic() - t0
    time.sleep(1)
    after = {i: cpu_seconds(pids[i]) for i in pids}
    ok = sum(1 for l in open(log) if l.startswith("RESULT") and l.split()[2] == "200")
    return ok, wall, {i: (after[i] - before[i]) / max(ok, 1) * 1000 for i in pids}

print(f"cost: {CALLS} calls (-d 0) at {RATE}/s through SBC 1, {ROUNDS} rounds alternated; CPU ms of Kamailio per call")
ratios = []
for r in range(ROUNDS):
    ok_on, w_on, c_on = load("tgbenchfwon", NET_ON)
    ok_off, w_off, c_off = load("tgbenchfwoff", NET_OFF)
    ratios.append(c_off[1] / c_on[1])
    print(f"  round {r + 1}: DMQ on: {ok_on}/{CALLS} answered, SBC 1 {c_on[1]:.3f} ms/call, peers {c_on[2]:.3f} and "
          f"{c_on[3]:.3f} ms/call; DMQ off: {ok_off}/{CALLS} answered, SBC 1 {c_off[1]:.3f} ms/call; "
          f"calls/s on/off (= CPU off/on) {c_off[1] / c_on[1]:.2f}")
print(f"  calls/s on/off, median of {ROUNDS}: {statistics.median(ratios):.2f} (target >= 0.9)")
PY
