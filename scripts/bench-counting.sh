#!/usr/bin/env bash
# Counting engines for fleet-wide limits, compared alone (docs/sbc.md
# "Fleet-wide limits"): the smallest proxy that counts a tenant's concurrent
# calls (sbc/kamailio/bench/counting.cfg) with
#   local  the SBC's own dialog profile (no fleet-wide count),
#   dmq    the same profile with dialogs replicated to 2 peers over DMQ,
#   redis  one counter in a Redis shared by the fleet (INCR, DECR at the end),
# the same SIPp load (TG_BENCH_CALLS calls, -d 0, at TG_BENCH_RATE/s) through
# SBC 1, TG_BENCH_ROUNDS rounds with the three in turn. Per call: the CPU
# milliseconds of the SBC that took it, of each DMQ peer, and of Redis,
# from /proc; then each engine's extra CPU per call over `local`.
#
#   scripts/bench-counting.sh
#
# Installs redis-server and kamailio-redis-modules (Debian) if missing.
# Addresses 127.0.207.x. Settings: TG_BENCH_CALLS (default 3000),
# TG_BENCH_RATE (default 300), TG_BENCH_ROUNDS (default 2).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

scripts/sbc-install.sh redis-server kamailio-redis-modules
RUN=${TOLLGATE_RUN:-/tmp/tollgate-run}
WORK=$RUN/tgbenchcount-work
NET=127.0.207
rm -rf "$WORK"
mkdir -p "$WORK"

cleanup() {
  [ -f "$WORK/redis.pid" ] && kill "$(cat "$WORK/redis.pid")" 2>/dev/null || true
  [ -f "$WORK/uas.pid" ] && kill "$(cat "$WORK/uas.pid")" 2>/dev/null || true
}
trap cleanup EXIT
redis-server --port 6390 --bind "$NET.200" --save '' --appendonly no --daemonize no > "$WORK/redis.log" 2>&1 &
echo $! > "$WORK/redis.pid"
sipp -sf sbc/sipp/uas.xml -i "$NET.250" -p 5070 -nostdin -timeout 1800s > /dev/null 2>&1 &
echo $! > "$WORK/uas.pid"
sleep 1

"$(python_env)" - "$ROOT" "$WORK" "$NET" <<'PY'
import os, signal, statistics, subprocess, sys, time
root, work, net = sys.argv[1:4]
CALLS = int(os.environ.get("TG_BENCH_CALLS", "3000"))
RATE = int(os.environ.get("TG_BENCH_RATE", "300"))
ROUNDS = int(os.environ.get("TG_BENCH_ROUNDS", "2"))
CFG = os.path.join(root, "sbc/kamailio/bench/counting.cfg")
DEFS = {"local": [], "dmq": ["-A", "WITH_DMQ"], "redis": ["-A", "WITH_REDIS"]}
sys.path.insert(0, os.path.join(root, "scripts"))
from proc_cpu import cpu_seconds

def start(engine):
    procs = []
    for i in range(1, 4 if engine == "dmq" else 2):
        env = dict(os.environ, B_IP=f"{net}.{i}", B_PORT="5060", B_DMQ_PORT="5062",
                   B_DMQ_SERVER=f"sip:{net}.{i}:5062", B_DMQ_NOTIFY=f"sip:{net}.1:5062",
                   B_RELAY=f"{net}.250:5070", B_REDIS=f"name=c;addr={net}.200;port=6390")
        procs.append(subprocess.Popen(
            ["kamailio", "-f", CFG, *DEFS[engine], "-DD", "-E", "-m", "256", "-M", "8", "-x", "tlsf", "-X", "tlsf"],
            env=env, stdout=open(os.path.join(work, f"{engine}-{i}.log"), "w"), stderr=subprocess.STDOUT))
    time.sleep(3)
    return procs

redis_pid = int(open(os.path.join(work, "redis.pid")).read())
csv = os.path.join(work, "n.csv")
open(csv, "w").write("SEQUENTIAL\n15551234;RTP/AVP\n")
per = {e: [] for e in DEFS}
print(f"{CALLS} calls (-d 0) at {RATE}/s through SBC 1; CPU ms per call")
for r in range(ROUNDS):
    for engine in DEFS:
        procs = start(engine)
        before = [cpu_seconds(p.pid) for p in procs] + [cpu_seconds(redis_pid, False)]
        log = os.path.join(work, "load.log")
        if os.path.exists(log):
            os.remove(log)
        subprocess.run(["sipp", f"{net}.1:5060", "-sf", os.path.join(root, "sbc/sipp/uac.xml"), "-inf", csv,
                        "-i", f"{net}.101", "-p", "0", "-m", str(CALLS), "-r", str(RATE), "-l", str(CALLS), "-d", "0",
                        "-nostdin", "-timeout", "120s", "-trace_logs", "-log_file", log],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=CALLS / RATE + 150)
        time.sleep(1)
        after = [cpu_seconds(p.pid) for p in procs] + [cpu_seconds(redis_pid, False)]
        ok = sum(1 for l in open(log) if l.startswith("RESULT") and l.split()[2] == "200")
        ms = [(a - b) / max(ok, 1) * 1000 for a, b in zip(after, before)]
        per[engine].append(ms[0])
        peers = ", ".join(f"{x:.3f}" for x in ms[1:-1]) or "-"
        print(f"  round {r + 1} {engine:5}: {ok}/{CALLS} answered; SBC 1 {ms[0]:.3f}, peers {peers}, Redis {ms[-1]:.3f}")
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=30)
        time.sleep(1)
base = statistics.median(per["local"])
for engine in DEFS:
    m = statistics.median(per[engine])
    print(f"  {engine:5} median SBC 1 {m:.3f} ms/call: +{m - base:.3f} over local, local/{engine} {base / m:.2f}")
PY
