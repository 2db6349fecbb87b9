#!/usr/bin/env bash
# Fleet-wide limits (docs/sbc.md "Fleet-wide limits"), measured in one run
# on real Kamailio + tollgate-agent + SIPp + Redis:
#  1. propagation: TG_BENCH_PROBES calls, one at a time, rotated over the
#     three SBCs of a fleet that counts in a shared Redis (TG_FLEET_STORE=1);
#     a poller reads the tenant's counts in the store (the numbers every
#     SBC decides with) without pause, and prints how long after SIPp sent
#     the INVITE the call was counted for every SBC, and how long after it
#     sent the BYE the call was no longer counted: p50, p90, p99, max.
#     Resolution: one poll (printed). Both clocks are this machine's.
#  2. cost: the same SIPp load (TG_BENCH_CALLS calls, -d 0, at
#     TG_BENCH_RATE/s) through SBC 1 of that fleet and through SBC 1 of a
#     fleet without a store at the same time (both meet the same machine),
#     TG_BENCH_ROUNDS times; for each, the CPU seconds Kamailio spent per
#     call on SBC 1, and Redis per call, from /proc, and the scripts the
#     store ran per call (admissions that asked it, flushes, heartbeats). Capacity on one core goes as 1 / CPU per call, so the ratio
#     off/on of Kamailio's CPU per call is the ratio of calls/s on vs off
#     (target >= 0.9); Redis runs on its own core in a real fleet.
#
#   scripts/bench-fleetwide.sh
#
# Settings: TG_BENCH_PROBES (default 60), TG_BENCH_CALLS (default 3000),
# TG_BENCH_RATE (default 300), TG_BENCH_ROUNDS (default 5), TG_BENCH_LIMITS
# (the bench tenant's limits block, default "concurrent: critical 100000";
# the propagation part needs a concurrent limit).
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

cat > "$WORK/policies/fwbench.tgp" <<EOF
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
  ${TG_BENCH_LIMITS:-concurrent: critical 100000}
}
EOF
"$TOLLGATE" compile "$WORK/policies" -o "$WORK/compiled" >/dev/null
"$PY" - "$WORK/compiled/fwbench.yaml" "$WORK/fwbench.json" <<'PY'
import json, sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
json.dump({"revision": "fwbench-r1", "policy": doc["spec"]["policy"]}, open(sys.argv[2], "w"))
PY

start_fleet() { # NAME NET STORE
  TG_FLEET_NET=${2##*.} TG_FLEET_STORE=$3 TG_SHM_MB=512 scripts/fleet.sh start "$1" 3 > /dev/null
  local i code token; token=$(cat "$RUN/$1/token")
  for i in 1 2 3; do
    code=$(curl -s --max-time 120 -o /dev/null -w '%{http_code}' -X PUT -H "Authorization: Bearer $token" \
      -H 'Content-Type: application/json' --data-binary "@$WORK/fwbench.json" "http://$2.$i:9180/v1/tenants/fwbench")
    [ "$code" = 200 ] || die "PUT fwbench to $2.$i: $code"
  done
}
say "two fleets of 3: $ON (a shared store, $NET_ON.x) and $OFF (each SBC alone, $NET_OFF.x)"
start_fleet "$ON" "$NET_ON" 1
start_fleet "$OFF" "$NET_OFF" 0
sleep 2

"$PY" - "$ROOT" "$RUN" "$WORK" <<'PY'
import datetime, json, os, socket, statistics, subprocess, sys, time
root, run, work = sys.argv[1:4]
PROBES = int(os.environ.get("TG_BENCH_PROBES", "60")) if "concurrent" in os.environ.get("TG_BENCH_LIMITS", "concurrent") else 0
CALLS = int(os.environ.get("TG_BENCH_CALLS", "3000"))
RATE = int(os.environ.get("TG_BENCH_RATE", "300"))
ROUNDS = int(os.environ.get("TG_BENCH_ROUNDS", "5"))
NET_ON, NET_OFF = "127.0.208", "127.0.209"
UAC = os.path.join(root, "sbc/sipp/uac.xml")

class Store:
    """The fleet's Redis, spoken to in RESP over one socket."""
    def __init__(self):
        self.s = socket.create_connection(("127.0.208.200", 6390), timeout=5)
        self.f = self.s.makefile("rb")
        self.cmd("AUTH", open(os.path.join(run, "tgbenchfwon/store/pass")).read().strip())
    def cmd(self, *args):
        out = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a.encode()) for a in args)
        self.s.sendall(out)
        return self.read()
    def read(self):
        line = self.f.readline()
        kind, rest = line[:1], line[1:-2]
        if kind in (b"+", b":"):
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.f.read(n + 2)[:-2].decode()
        if kind == b"*":
            return [self.read() for _ in range(int(rest))]
        raise RuntimeError(f"unexpected reply {line!r}")
    def counted(self):
        """fwbench's calls held in the store (calls up plus spare slots), as
        the SBCs' next decisions see them."""
        return sum(int(v or 0) for v in (self.cmd("HGET", f"tg:tgbenchfwon:c:tgbenchfwon-{i}", "fwbench")
                                          for i in (1, 2, 3)))

def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]

def sipp(net, i, src, calls, rate, hold_ms, log, trace=None):
    csv = os.path.join(work, "n.csv")
    with open(csv, "w") as f:
        f.write("SEQUENTIAL\n+12125550100;RTP/AVP\n")
    extra = ["-trace_msg", "-message_file", trace] if trace else []
    return subprocess.Popen(
        ["sipp", f"{net}.{i}:{5100 + 10 * i}", "-sf", UAC, "-inf", csv, "-i", src, "-p", "0", "-t", "u1",
         "-m", str(calls), "-r", str(rate), "-l", str(max(calls, 1)), "-d", str(hold_ms), "-nostdin",
         "-timeout", "120s", "-trace_logs", "-log_file", log] + extra,
        stdout=subprocess.DEVNULL, stderr=open(log + ".err", "w"))

def sent_at(trace, method):
    """Realtime of the first `method` request SIPp sent (its -trace_msg)."""
    stamp = None
    for line in open(trace):
        if line.startswith("-----") and line.count(":") == 2:
            d, t = line.strip("- \n").split()[:2]
            stamp = datetime.datetime.strptime(f"{d} {t}", "%Y-%m-%d %H:%M:%S.%f").timestamp()
        elif line.startswith(method + " sip:") and stamp is not None:
            return stamp
        elif line.startswith("UDP message received"):
            stamp = None
    raise RuntimeError(f"no {method} sent in {trace}")

# 1. propagation
store = Store()
up, down, polls = [], [], []
for k in range(PROBES):
    o = k % 3
    trace = os.path.join(work, "probe-msg.log")
    if os.path.exists(trace):
        os.remove(trace)
    if store.counted() != 0:
        sys.exit(f"probe {k}: calls still counted before it")
    p = sipp(NET_ON, o + 1, f"127.61.3.{o + 1}", 1, 1, 700, os.path.join(work, "probe.log"), trace)
    seen = {}
    t_end = time.time() + 20
    while len(seen) < 2 and time.time() < t_end:
        t0 = time.time()
        n = store.counted()
        t1 = time.time()
        polls.append(t1 - t0)
        if n >= 1 and "up" not in seen:
            seen["up"] = t1
        if n == 0 and "up" in seen:
            seen["down"] = t1
    p.wait(timeout=30)
    if len(seen) < 2:
        sys.exit(f"probe {k}: the store did not count the call and its end within 20 s: {seen}")
    up.append((seen["up"] - sent_at(trace, "INVITE")) * 1000)
    down.append((seen["down"] - sent_at(trace, "BYE")) * 1000)
if PROBES:
    print(f"propagation through the store, {PROBES} calls rotated over 3 SBCs (poll p50 {statistics.median(polls) * 1000:.3f} ms):")
for name, xs in (("call up", up), ("call ended", down)) if PROBES else ():
    print(f"  {name:10} counted for every SBC after SIPp sent the {'INVITE' if name == 'call up' else 'BYE'}: "
          f"p50 {pct(xs, 50):.2f} ms, p90 {pct(xs, 90):.2f} ms, p99 {pct(xs, 99):.2f} ms, max {max(xs):.2f} ms")

# 2. cost per call
sys.path.insert(0, os.path.join(root, "scripts"))
from proc_cpu import cpu_seconds

def kamailio_pid(name, i):
    return int(open(os.path.join(run, f"{name}-{i}", "pid")).read())

redis_pid = int(open(os.path.join(run, "tgbenchfwon/store/pid")).read())

def evalsha_calls():
    """Scripts run by the store so far (admissions, flushes, heartbeats)."""
    for line in store.cmd("INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_evalsha:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0

def both():
    """The same load through SBC 1 of each fleet at the same time, so both
    meet the same machine: -> per fleet (answered, Kamailio CPU ms per call
    per SBC), Redis CPU ms and scripts per call of the fleet with a store."""
    fleets = (("tgbenchfwon", NET_ON), ("tgbenchfwoff", NET_OFF))
    pids = {(n, i): kamailio_pid(n, i) for n, _ in fleets for i in (1, 2, 3)}
    before = {k: cpu_seconds(p) for k, p in pids.items()}
    r0, e0 = cpu_seconds(redis_pid, False), evalsha_calls()
    procs, logs = [], {}
    for k, (n, net) in enumerate(fleets):
        logs[n] = os.path.join(work, f"load-{n}.log")
        if os.path.exists(logs[n]):
            os.remove(logs[n])
        procs.append(sipp(net, 1, f"127.61.3.{9 + k}", CALLS, RATE, 0, logs[n]))
    for p, n in zip(procs, logs):
        if p.wait(timeout=CALLS / RATE + 120) != 0 or not os.path.exists(logs[n]):
            sys.exit(f"SIPp through {n} failed ({p.returncode}): {open(logs[n] + '.err').read()[-2000:]}")
    time.sleep(1)
    after = {k: cpu_seconds(p) for k, p in pids.items()}
    r1, e1 = cpu_seconds(redis_pid, False), evalsha_calls()
    out = {}
    for n, _ in fleets:
        ok = sum(1 for l in open(logs[n]) if l.startswith("RESULT") and l.split()[2] == "200")
        out[n] = (ok, {i: (after[(n, i)] - before[(n, i)]) / max(ok, 1) * 1000 for i in (1, 2, 3)})
    ok_on = max(out["tgbenchfwon"][0], 1)
    return out, (r1 - r0) / ok_on * 1000, (e1 - e0) / ok_on

print(f"cost: {CALLS} calls (-d 0) at {RATE}/s through SBC 1 of each fleet at the same time, {ROUNDS} rounds; "
      "CPU ms of Kamailio per call")
ratios = []
for r in range(ROUNDS):
    out, redis_ms, scripts = both()
    (ok_on, c_on), (ok_off, c_off) = out["tgbenchfwon"], out["tgbenchfwoff"]
    ratios.append(c_off[1] / c_on[1])
    print(f"  round {r + 1}: store on: {ok_on}/{CALLS} answered, SBC 1 {c_on[1]:.3f} ms/call, Redis {redis_ms:.3f} ms/call "
          f"and {scripts:.3f} scripts/call, peers {c_on[2]:.3f} and {c_on[3]:.3f} ms/call; store off: {ok_off}/{CALLS} "
          f"answered, SBC 1 {c_off[1]:.3f} ms/call; calls/s on/off (= CPU off/on) {c_off[1] / c_on[1]:.2f}")
print(f"  calls/s on/off, median of {ROUNDS}: {statistics.median(ratios):.2f} (target >= 0.9)")
PY
