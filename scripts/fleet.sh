#!/usr/bin/env bash
# A local fleet of Tollgate SBCs on loopback: N Kamailio instances
# (tollgate.cfg, started by scripts/sbc.sh with an EMPTY policy set), each
# with its own tollgate-agent (one bearer token file shared by the fleet),
# and one shared SIPp UAS that allowed calls are relayed to.
#
#   scripts/fleet.sh start NAME N           start (or complete) the fleet; one line per SBC:
#                                           "<name> sip=<ip:port> agent=http://<ip:port> rpc=http://<ip:port>/RPC"
#   scripts/fleet.sh stop NAME              stop everything the fleet started (also a half-started one)
#   scripts/fleet.sh status NAME            one line per SBC: running or not; exit 1 if any part is down
#   scripts/fleet.sh call NAME I SRC NUMBER one SIPp call from SRC through SBC I (1-based): prints "CODE RULE"
#   scripts/fleet.sh part NAME I kamailio|agent stop|start
#                                           stop or start one part of SBC I alone, keeping its data
#                                           and state dirs (a broken SBC in tests: Kamailio down
#                                           makes the agent's reloads fail, agent down = unreachable)
#   scripts/fleet.sh part NAME I store cut|join
#                                           (TG_FLEET_STORE=1) cut SBC I off the fleet's store (its
#                                           address is unbound and its connections closed), or let it
#                                           reach the store again
#
# Addresses: SBC i is 127.0.K.i (SIP port 5100+10i, JSON-RPC 5101+10i, agent
# TG_FLEET_AGENT_PORT, default 9180: one port for the whole fleet, like the
# agentPort of a pod-selector SbcFleet), its agent's trial instances use 127.0.K.(100+i), the UAS is
# 127.0.K.250:5070. K comes from TG_FLEET_NET (default: 20 + a hash of NAME
# modulo 200), so fleets of different names do not collide.
# Files: ${TOLLGATE_RUN:-/tmp/tollgate-run}/NAME/: fleet.tsv (name, sip, agent
# URL, rpc URL, agent host, agent port; tab separated, '#' header), token
# (the agents' bearer token, mode 0600), sbc<i>/{data,state,agent.log,agent.pid}.
# Settings: TG_GEOIP_DB (a GeoIP2 .mmdb for Kamailio and the agents: geo
# rules), TG_AGENT_BIN (a built tollgate-agent; default: cargo build),
# TG_UAS_TIMEOUT (the UAS quits by itself after it, default 3600 s),
# TG_FLEET_STORE=1 (concurrent and rate limits counted over the whole fleet:
# a Redis for the fleet, password protected, on port 6390, which SBC i
# reaches at 127.0.K.(200+i), the scripts at 127.0.K.200; kept for later
# `part ... start`).
# Start is idempotent: running SBCs are kept, missing or half-running ones
# are (re)started with an empty policy set, SBCs beyond N are stopped.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

RUN=${TOLLGATE_RUN:-/tmp/tollgate-run}
export TOLLGATE_RUN=$RUN

usage() { sed -n '2,37p' "$0" >&2; exit 2; }

valid_name() { [[ $1 =~ ^[a-z0-9][a-z0-9-]{0,30}$ ]] || die "fleet name '$1': use 1-31 of a-z 0-9 -"; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

net_of() {
  if [ -n "${TG_FLEET_NET:-}" ]; then
    [[ $TG_FLEET_NET =~ ^[0-9]+$ ]] && [ "$TG_FLEET_NET" -ge 1 ] && [ "$TG_FLEET_NET" -le 254 ] ||
      die "TG_FLEET_NET must be 1..254"
    echo "127.0.$TG_FLEET_NET"
  else
    echo "127.0.$((20 + $(printf '%s' "$1" | cksum | cut -d' ' -f1) % 200))"
  fi
}

# per-SBC facts: sets IP SIP_PORT RPC_PORT AGENT_PORT TRIAL_IP SBC
sbc_vars() {
  local name=$1 i=$2 net; net=$(net_of "$name")
  IP=$net.$i
  SIP_PORT=$((5100 + 10 * i))
  RPC_PORT=$((SIP_PORT + 1))
  AGENT_PORT=${TG_FLEET_AGENT_PORT:-9180}
  TRIAL_IP=$net.$((100 + i))
  STORE_IP=$net.$((200 + i))
  SBC=$name-$i
}

agent_bin() {
  if [ -n "${TG_AGENT_BIN:-}" ]; then echo "$TG_AGENT_BIN"; return; fi
  build_all >&2
  echo "$CARGO_TARGET_DIR/debug/tollgate-agent"
}

empty_tables() { # DIR: every table as its header line, plus version
  python3 "$ROOT/scripts/sbc-data.py" empty "$1"
}

stop_pidfile() { # PIDFILE WHAT
  local pidf=$1 pid i
  alive "$pidf" || { rm -f "$pidf"; return 0; }
  pid=$(cat "$pidf")
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$pidf"; return 0; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pidf"
  echo "$2 killed after 5 s" >&2
}

stop_one() { # NAME I
  local dir=$RUN/$1/sbc$2
  sbc_vars "$1" "$2"
  stop_pidfile "$dir/agent.pid" "agent $SBC"
  "$ROOT/scripts/sbc.sh" stop "$SBC" >/dev/null 2>&1 || true
}

sbc_up() { "$ROOT/scripts/sbc.sh" status "$1" >/dev/null 2>&1; }

start_one() { # NAME I BIN
  local name=$1 i=$2 bin=$3 fdir=$RUN/$1 dir=$RUN/$1/sbc$2
  sbc_vars "$name" "$i"
  if alive "$dir/agent.pid" && sbc_up "$SBC"; then return 0; fi
  stop_one "$name" "$i"
  rm -rf "$dir/data" "$dir/state"
  mkdir -p "$dir/state"
  empty_tables "$dir/data"
  kamailio_start "$name" "$i"
  agent_start "$name" "$i" "$bin"
}

kamailio_start() { # NAME I (sbc_vars set): Kamailio on the SBC's data dir as it is
  local fdir=$RUN/$1 dir=$RUN/$1/sbc$2
  local store=
  if [ -f "$fdir/store/pass" ]; then
    store="name=fleet;addr=$STORE_IP;port=$STORE_PORT;pass=$(cat "$fdir/store/pass")"
  fi
  TG_RELAY=$(cat "$fdir/uas") TG_RPC_PORT=$RPC_PORT TG_FLEET_REDIS=$store TG_FLEET_KEY="tg:$1" \
    TG_SBC_ID="$SBC" TG_FLEET_SIZE="$(cat "$fdir/size" 2>/dev/null || echo 1)" \
    "$ROOT/scripts/sbc.sh" start "$SBC" "$IP" "$SIP_PORT" "$dir/data" 2>> "$fdir/fleet.log"
}

# The fleet's store (TG_FLEET_STORE=1): one redis-server, password in
# store/pass (0600), listening on 127.0.K.200 (for these scripts: never
# cut) and on every SBC's store address
STORE_PORT=6390
store_addrs() { # NAME [SKIP]: the store's addresses, SBC SKIP's left out
  local n i net out=(); n=$(cat "$RUN/$1/size"); net=$(net_of "$1")
  out+=("$net.200")
  for i in $(seq 1 "$n"); do [ "$i" = "${2:-}" ] || out+=("$net.$((200 + i))"); done
  echo "${out[*]}"
}
store_cli() { # NAME ARGS...: redis-cli on the store (the password from the environment, not argv)
  local name=$1; shift
  REDISCLI_AUTH=$(cat "$RUN/$name/store/pass") redis-cli -h "$(net_of "$name").200" -p "$STORE_PORT" "$@"
}
store_start() { # NAME
  local sdir=$RUN/$1/store
  mkdir -p "$sdir"
  if alive "$sdir/pid" && store_cli "$1" PING 2>/dev/null | grep -q PONG; then
    store_cli "$1" CONFIG SET bind "$(store_addrs "$1")" > /dev/null
    return 0
  fi
  [ -s "$sdir/pass" ] || (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$sdir/pass")
  (umask 077 && {
    echo "bind $(store_addrs "$1")"
    echo "port $STORE_PORT"
    echo "requirepass $(cat "$sdir/pass")"
    echo "save \"\""
    echo "appendonly no"
    echo "protected-mode yes"
    echo "dir $sdir"
    echo "pidfile $sdir/pid"
    echo "logfile $sdir/log"
    echo "daemonize yes"
  } > "$sdir/redis.conf")
  redis-server "$sdir/redis.conf"
  local n
  for n in $(seq 1 50); do
    store_cli "$1" PING 2>/dev/null | grep -q PONG && return 0
    sleep 0.1
  done
  die "the fleet's store did not answer within 5 s ($sdir/log)"
}
store_stop() { # NAME
  local sdir=$RUN/$1/store
  alive "$sdir/pid" || return 0
  store_cli "$1" SHUTDOWN NOSAVE > /dev/null 2>&1 || true
  stop_pidfile "$sdir/pid" "store $1"
}

agent_start() { # NAME I BIN (sbc_vars set): the agent on the SBC's data and state dirs as they are
  local fdir=$RUN/$1 dir=$RUN/$1/sbc$2 bin=$3
  local geo=()
  [ -n "${TG_GEOIP_DB:-}" ] && geo=(--geoip-db "$TG_GEOIP_DB")
  "$bin" --listen "$IP:$AGENT_PORT" --rpc-url "http://$IP:$RPC_PORT/RPC" --data-dir "$dir/data" \
    --state-dir "$dir/state" --token-file "$fdir/token" --cfg "$ROOT/sbc/kamailio/tollgate.cfg" \
    --trial-ip "$TRIAL_IP" "${geo[@]}" --reconcile-secs 2 >> "$dir/agent.log" 2>&1 < /dev/null &
  echo $! > "$dir/agent.pid"
  local n
  for n in $(seq 1 100); do
    alive "$dir/agent.pid" || { tail -5 "$dir/agent.log" >&2; die "agent $SBC exited during start ($dir/agent.log)"; }
    if curl -s --max-time 2 -o /dev/null "http://$IP:$AGENT_PORT/healthz"; then return 0; fi
    sleep 0.1
  done
  die "agent $SBC did not listen within 10 s ($dir/agent.log)"
}

cmd_start() {
  [ $# -eq 2 ] || usage
  local name=$1 n=$2 fdir=$RUN/$1 i
  valid_name "$name"
  [[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 99 ] || die "N must be 1..99"
  command -v kamailio >/dev/null && command -v sipp >/dev/null || "$ROOT/scripts/sbc-install.sh" >&2
  local bin; bin=$(agent_bin)
  mkdir -p "$fdir"
  if [ ! -s "$fdir/token" ]; then
    (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$fdir/token")
  fi
  local net; net=$(net_of "$name")
  echo "$net.250:5070" > "$fdir/uas"
  echo "$n" > "$fdir/size"
  if [ "${TG_FLEET_STORE:-0}" = 1 ]; then
    command -v redis-server >/dev/null || "$ROOT/scripts/sbc-install.sh" >&2
    store_start "$name"
  else
    store_stop "$name"
    rm -rf "$fdir/store"
  fi
  if ! alive "$RUN/uas-$name/pid"; then
    TG_UAS_TIMEOUT=${TG_UAS_TIMEOUT:-3600} "$ROOT/scripts/sbc.sh" uas-start "$name" "$net.250" 5070 2>> "$fdir/fleet.log"
  fi
  # SBCs beyond N from an earlier, larger start
  for d in "$fdir"/sbc*; do
    [ -d "$d" ] || continue
    i=${d##*/sbc}
    if [[ $i =~ ^[0-9]+$ ]] && [ "$i" -gt "$n" ]; then stop_one "$name" "$i"; rm -rf "$d"; fi
  done
  {
    printf '#name\tsip\tagent\trpc\tagent_host\tagent_port\n'
    for i in $(seq 1 "$n"); do
      sbc_vars "$name" "$i"
      printf '%s\t%s:%s\thttp://%s:%s\thttp://%s:%s/RPC\t%s\t%s\n' \
        "$SBC" "$IP" "$SIP_PORT" "$IP" "$AGENT_PORT" "$IP" "$RPC_PORT" "$IP" "$AGENT_PORT"
    done
  } > "$fdir/fleet.tsv.new"
  mv "$fdir/fleet.tsv.new" "$fdir/fleet.tsv"
  for i in $(seq 1 "$n"); do
    start_one "$name" "$i" "$bin"
    sbc_vars "$name" "$i"
    echo "$SBC sip=$IP:$SIP_PORT agent=http://$IP:$AGENT_PORT rpc=http://$IP:$RPC_PORT/RPC"
  done
}

cmd_part() {
  [ $# -eq 4 ] || usage
  local name=$1 i=$2 what=$3 action=$4 dir=$RUN/$1/sbc$2
  valid_name "$name"
  [[ $i =~ ^[0-9]+$ ]] && [ -d "$dir" ] || die "fleet $name has no SBC $i"
  sbc_vars "$name" "$i"
  case $what/$action in
    store/cut)
      [ -f "$RUN/$name/store/pass" ] || die "fleet $name has no store (TG_FLEET_STORE=1)"
      store_cli "$name" CONFIG SET bind "$(store_addrs "$name" "$i")" > /dev/null
      store_cli "$name" CLIENT KILL LADDR "$STORE_IP:$STORE_PORT" > /dev/null 2>&1 || true
      ;;
    store/join)
      [ -f "$RUN/$name/store/pass" ] || die "fleet $name has no store (TG_FLEET_STORE=1)"
      store_cli "$name" CONFIG SET bind "$(store_addrs "$name")" > /dev/null
      ;;
    kamailio/stop) "$ROOT/scripts/sbc.sh" stop "$SBC" >/dev/null ;;
    kamailio/start) sbc_up "$SBC" || kamailio_start "$name" "$i" ;;
    agent/stop) stop_pidfile "$dir/agent.pid" "agent $SBC" ;;
    agent/start) alive "$dir/agent.pid" || agent_start "$name" "$i" "$(agent_bin)" ;;
    *) usage ;;
  esac
}

cmd_stop() {
  [ $# -eq 1 ] || usage
  local name=$1 fdir=$RUN/$1 d i
  valid_name "$name"
  for d in "$fdir"/sbc*; do
    [ -d "$d" ] || continue
    i=${d##*/sbc}
    [[ $i =~ ^[0-9]+$ ]] && stop_one "$name" "$i"
  done
  "$ROOT/scripts/sbc.sh" uas-stop "$name" >/dev/null 2>&1 || true
  [ -f "$fdir/size" ] && store_stop "$name"
  echo "fleet $name stopped" >&2
}

cmd_status() {
  [ $# -eq 1 ] || usage
  local name=$1 fdir=$RUN/$1 rc=0 line s a
  valid_name "$name"
  [ -f "$fdir/fleet.tsv" ] || { echo "fleet $name: not started"; return 1; }
  while IFS=$'\t' read -r sbc sip agent rpc _ _; do
    case $sbc in '#'*) continue ;; esac
    s=down; a=down
    sbc_up "$sbc" && s=up
    alive "$fdir/sbc${sbc##*-}/agent.pid" && a=up
    line="$sbc sip=$sip kamailio=$s agent=$agent ($a)"
    if [ "$a" = up ]; then
      line+=" healthz=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$agent/healthz" || true)"
    fi
    echo "$line"
    [ $s = up ] && [ $a = up ] || rc=1
  done < "$fdir/fleet.tsv"
  if alive "$RUN/uas-$name/pid"; then echo "uas $(cat "$fdir/uas") up"; else echo "uas down"; rc=1; fi
  if [ -f "$fdir/store/pass" ]; then
    if store_cli "$name" PING 2>/dev/null | grep -q PONG; then
      echo "store $(net_of "$name").200:$STORE_PORT up ($(store_cli "$name" ZCARD "tg:$name:m") SBCs registered)"
    else
      echo "store down"; rc=1
    fi
  fi
  return $rc
}

cmd_call() {
  [ $# -eq 4 ] || usage
  local name=$1 i=$2 src=$3 num=$4 fdir=$RUN/$1
  valid_name "$name"
  [[ $i =~ ^[0-9]+$ ]] || die "I must be a number"
  [[ $src =~ ^[0-9.]+$ ]] || die "SRC must be an IPv4 address"
  [[ $num =~ ^\+?[0-9]{1,20}$ ]] || die "NUMBER must be digits with an optional +"
  local sip; sip=$(awk -F'\t' -v n="$name-$i" '$1 == n {print $2}' "$fdir/fleet.tsv" 2>/dev/null)
  [ -n "$sip" ] || die "fleet $name has no SBC $i"
  sip_call "$sip" "$src" "$num" "$fdir/calls"
}

[ $# -ge 1 ] || usage
cmd=$1; shift
case $cmd in
  start) cmd_start "$@" ;;
  stop) cmd_stop "$@" ;;
  status) cmd_status "$@" ;;
  call) cmd_call "$@" ;;
  part) cmd_part "$@" ;;
  *) usage ;;
esac
