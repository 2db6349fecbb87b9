#!/usr/bin/env bash
# Instructions per call through tollgate.cfg vs plain.cfg, counted by
# valgrind's callgrind: a count, not a time, so it repeats whatever else the
# machine runs (the calls/s of scripts/bench-sbc.sh do not on shared cores).
#
# For each config: Kamailio (the same flags as scripts/bench-sbc.sh: -x tlsf
# -X tlsf, TG_SHM_MB=1024, the same children and sockets) runs under
# callgrind, which follows its forked processes (one output file each), twice:
# with TG_INSTR_CALLS/5 calls and with TG_INSTR_CALLS calls (-d 0, one SIPp
# UAC at TG_INSTR_RATE/s, slow enough for Kamailio under valgrind, to the same
# UAS), each stopped TG_INSTR_SECS after Kamailio answers RPC. Instructions
# per call = (all processes of the big run - those of the small run) / the
# difference in calls: the start, the timers' idle work and each process's
# first-message costs cancel out. tollgate.cfg holds the data bench-sbc.sh
# gives it: acme's test copy (scripts/test-agreement.sh) without limits,
# revision acme-r1; the calls go from acme's network to +14155550100
# (allowed). Also printed, per config, the functions with the most own
# (exclusive) instructions per call (TG_INSTR_TOP, 0 = none). A run with SIPp
# retransmissions or failed calls is flagged (they add work): its count is
# then not comparable.
#
#   scripts/bench-sbc-instructions.sh
#
# Settings: TG_INSTR_CALLS (default 1000), TG_INSTR_RATE (default 40),
# TG_INSTR_SECS (default CALLS/RATE + 10), TG_INSTR_TOP (default 15),
# TG_INSTR_CFGS (default "plain tollgate"; names in sbc/kamailio or .cfg files), TG_AGENT_TEST_IP (default
# 127.203.0.1). Takes about 2 minutes.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

scripts/sbc-install.sh
if ! command -v valgrind >/dev/null 2>&1 || ! command -v callgrind_annotate >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || die "valgrind is missing and installing it needs root"
  say "installing valgrind (Debian)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends valgrind >&2
fi

RUN=${TOLLGATE_RUN:-/tmp/tollgate-run}
export TOLLGATE_RUN=$RUN
NAME=tginstr
SBC_IP=${TG_AGENT_TEST_IP:-127.203.0.1}
NET=${SBC_IP%.*}
UAS_IP=$NET.2
WORK=$RUN/$NAME-work
CALLS=${TG_INSTR_CALLS:-1000}
RATE=${TG_INSTR_RATE:-40}
SECS=${TG_INSTR_SECS:-$(( CALLS / RATE + 10 ))}
SMALL=$(( CALLS / 5 ))
TOP=${TG_INSTR_TOP:-15}
CFGS=${TG_INSTR_CFGS:-plain tollgate}
PY=$(python_env)
SRC=127.51.100.20   # acme's allowed network in the test copies (as bench-sbc.sh)

say "building (release): the agreement helper and tollgate-render"
cargo build --quiet --locked --release -p tollgate-kamailio --bin tollgate-render --example agreement

cleanup() {
  TG_STOP_S=60 scripts/sbc.sh stop "$NAME" 2>/dev/null || true
  scripts/sbc.sh uas-stop "$NAME" 2>/dev/null || true
}
trap cleanup EXIT
cleanup
rm -rf "$WORK"
mkdir -p "$WORK"

# the data bench-sbc.sh's agent PUT gives Kamailio: acme's test copy, no limits
"$CARGO_TARGET_DIR/release/examples/agreement" prepare examples/policies "$WORK/agree" >/dev/null
"$PY" - "$WORK/agree/fleet/acme.yaml" "$WORK/acme.yaml" <<'PY'
import sys, yaml
p = yaml.safe_load(open(sys.argv[1]))
p["limits"] = []
yaml.safe_dump(p, open(sys.argv[2], "w"))
PY
"$CARGO_TARGET_DIR/release/tollgate-render" "$WORK/acme.yaml" --out "$WORK/data" --revision acme=acme-r1 >/dev/null

TG_UAS_TIMEOUT=900 scripts/sbc.sh uas-start "$NAME" "$UAS_IP" 5070
printf 'SEQUENTIAL\n+14155550100;RTP/AVP\n' > "$WORK/calls.csv"

# sum of the instructions of every callgrind output file in DIR
total() { "$PY" - "$1" <<'PY'
import glob, sys
t = 0
for f in glob.glob(sys.argv[1] + "/cg.*"):
    for line in open(f, errors="replace"):
        if line.startswith("summary:"):
            t += int(line.split()[1]); break
print(t)
PY
}

# cfg_path NAME|FILE -> the config file (a name is sbc/kamailio/NAME.cfg)
cfg_path() { case $1 in */*|*.cfg) echo "$1" ;; *) echo "sbc/kamailio/$1.cfg" ;; esac; }
cfg_label() { basename "$1" .cfg; }

# run CFG CALLS -> $WORK/LABEL-CALLS/{cg.PID,sipp.out,...}
run() {
  local cfg=$1 n=$2 dir; dir=$WORK/$(cfg_label "$1")-$2
  mkdir -p "$dir"
  TG_KAMAILIO_WRAP="valgrind --tool=callgrind --callgrind-out-file=$dir/cg.%p" TG_START_S=120 \
    TG_CFG=$(cfg_path "$cfg") TG_SHM_MB=1024 TG_RELAY=$UAS_IP:5070 \
    scripts/sbc.sh start "$NAME" "$SBC_IP" 5060 "$WORK/data" 2>/dev/null
  local t0; t0=$(date +%s)
  if [ "$n" -gt 0 ]; then
    timeout $(( SECS + 60 )) sipp "$SBC_IP:5060" -sf sbc/sipp/uac.xml -inf "$WORK/calls.csv" -i $SRC -p 0 -t u1 \
      -m "$n" -r "$RATE" -l 200 -d 0 -nostdin -timeout "${SECS}s" -recv_timeout 70s -trace_logs -log_file "$dir/calls.log" \
      -trace_err -error_file "$dir/sipp.err" > "$dir/sipp.out" 2>&1 || true
  fi
  local left=$(( t0 + SECS - $(date +%s) ))
  [ "$left" -gt 0 ] && sleep "$left"
  TG_STOP_S=60 scripts/sbc.sh stop "$NAME" 2>/dev/null
  # every process has written its file when the main one is gone
  local i
  for i in $(seq 1 600); do
    pgrep -f "callgrind-out-file=$dir/" >/dev/null || break
    sleep 0.1
  done
}

# sipp_check DIR N -> "N x 200, N BYE 200, R retransmissions, F failed"
sipp_check() { "$PY" - "$1" "$2" <<'PY'
import re, sys
d, n = sys.argv[1], int(sys.argv[2])
log = open(d + "/calls.log", errors="replace").read() if n else ""
ok = len(re.findall(r"^RESULT \S+ 200 ", log, re.M))
bye = len(re.findall(r"^BYE \S+ 200", log, re.M))
out = open(d + "/sipp.out", errors="replace").read()
# the scenario screen: message, count, retransmissions, ...
retrans = sum(int(m[1]) for m in re.finditer(r"^\s+(?:INVITE|BYE|ACK) -+>\s+\d+\s+(\d+)", out, re.M))
failed = re.findall(r"Failed call\s*\|\s*\d+\s*\|\s*(\d+)", out)
print(f"{ok} x 200, {bye} BYE 200, {retrans} retransmissions, {failed[-1] if failed else '?'} failed")
PY
}

# per-function own (exclusive) instructions per call: (big - small) / calls
top_functions() { "$PY" - "$1" "$2" "$3" "$TOP" <<'PY'
import collections, glob, re, subprocess, sys
def funcs(d):
    agg = collections.Counter()
    for f in glob.glob(d + "/cg.*"):
        out = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100", f],
                             capture_output=True, text=True).stdout
        for line in out.splitlines():
            m = re.match(r"^\s*([\d,]+) \([ \d.]+%\)\s+(.*)$", line)
            if m:
                name = re.sub(r"'\d+", "", m[2]).replace("/usr/lib/x86_64-linux-gnu/kamailio/modules/", "")
                agg[name] += int(m[1].replace(",", ""))
    return agg
small, big, n, top = funcs(sys.argv[1]), funcs(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rows = sorted(((big[k] - small[k]) / n, k) for k in big if k != "PROGRAM TOTALS")
for v, k in reversed(rows[-top:]):
    print(f"  {v:>10,.0f}  {k}")
PY
}

declare -A PER_CALL
for cfg in $CFGS; do
  [ -f "$(cfg_path "$cfg")" ] || die "no config $(cfg_path "$cfg")"
  say "$(cfg_path "$cfg"): $SMALL calls, then $CALLS calls, at $RATE/s; each run $SECS s (under callgrind)"
  run "$cfg" "$SMALL"
  run "$cfg" "$CALLS"
  cfg=$(cfg_label "$cfg")
  small=$(total "$WORK/$cfg-$SMALL")
  big=$(total "$WORK/$cfg-$CALLS")
  per=$(( (big - small) / (CALLS - SMALL) ))
  PER_CALL[$cfg]=$per
  c1=$(sipp_check "$WORK/$cfg-$SMALL" "$SMALL")
  c2=$(sipp_check "$WORK/$cfg-$CALLS" "$CALLS")
  echo "$cfg.cfg: $small instructions with $SMALL calls, $big with $CALLS (all processes); per call $per; SIPp: $c1; $c2"
  case "$c1; $c2" in
    "$SMALL x 200, $SMALL BYE 200, 0 retransmissions, 0 failed; $CALLS x 200, $CALLS BYE 200, 0 retransmissions, 0 failed") ;;
    *) echo "WARNING $cfg.cfg: retransmissions or failed calls: this count is not comparable" ;;
  esac
  if [ "$TOP" -gt 0 ]; then
    echo "$cfg.cfg: the functions with the most own instructions per call:"
    top_functions "$WORK/$cfg-$SMALL" "$WORK/$cfg-$CALLS" $(( CALLS - SMALL ))
  fi
done
if [ -n "${PER_CALL[plain]:-}" ] && [ -n "${PER_CALL[tollgate]:-}" ]; then
  echo "RESULT instructions per call: plain=${PER_CALL[plain]} tollgate=${PER_CALL[tollgate]} ratio plain/tollgate=$("$PY" -c "print(round(${PER_CALL[plain]}/${PER_CALL[tollgate]}, 3))")"
fi
