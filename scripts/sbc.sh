#!/usr/bin/env bash
# Local Tollgate SBC instances (Kamailio) and the test UAS (SIPp).
#
#   scripts/sbc.sh start NAME IP PORT DATA_DIR   start an SBC (tollgate.cfg)
#   scripts/sbc.sh stop NAME                     stop it (TERM, then KILL after 5 s)
#   scripts/sbc.sh status NAME                   running? prints pid and ports
#   scripts/sbc.sh rpc NAME METHOD [PARAM...]    JSON-RPC call, prints the JSON answer
#   scripts/sbc.sh uas-start NAME IP PORT        start the test UAS (sbc/sipp/uas.xml)
#   scripts/sbc.sh uas-stop NAME
#
# Settings for start (environment):
#   TG_CFG       config file (default sbc/kamailio/tollgate.cfg; plain.cfg for the baseline)
#   TG_RPC_PORT  JSON-RPC over HTTP port on IP (default PORT+1)
#   TG_RELAY     host:port allowed calls go to (default 127.0.0.1:5070)
#   TG_GEOIP_DB  a GeoIP2 .mmdb: enables geo lookups (-A WITH_GEOIP)
#   TG_TLS_CFG   a tls module config: enables TLS on TG_TLS_PORT (default PORT+2)
#   TG_FLEET_REDIS  the fleet's store as an ndb_redis server spec
#                (name=fleet;addr=IP;port=PORT;pass=PASSWORD): enables fleet-wide
#                limits (-A WITH_FLEET) with TG_FLEET_KEY (key prefix, default
#                tg:local), TG_SBC_ID (default NAME), TG_FLEET_SIZE (default 1)
#   TG_SHM_MB    shared memory (default 256), TG_PKG_MB private memory (default 16)
#   TG_SHM_PREFAULT=1  touch all of it at start (-A WITH_SHM_PREFAULT, tollgate.cfg)
#   TG_DEBUG=1   verbose log
#   TG_KAMAILIO_WRAP  a command prefix for kamailio (e.g. "valgrind --tool=callgrind ...")
#   TG_START_S   seconds to wait for the first RPC answer (default 10); TG_STOP_S
#                seconds stop waits after TERM before KILL (default 5)
# RPC params: a param of digits only is sent as a JSON number; prefix it with
# "s:" to send it as a string (e.g. `rpc N htable.sets tg_block acme s:0`).
# Runtime files: ${TOLLGATE_RUN:-/tmp/tollgate-run}/NAME/{pid,log,env}.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

RUN=${TOLLGATE_RUN:-/tmp/tollgate-run}

usage() { sed -n '2,29p' "$0" >&2; exit 2; }

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

rpc_url() {
  local dir=$RUN/$1
  [ -f "$dir/env" ] || die "no SBC named $1 (no $dir/env)"
  # shellcheck disable=SC1091
  . "$dir/env"
  echo "http://$TG_IP:$TG_RPC_PORT/RPC"
}

# rpc_json METHOD [PARAM...] -> the JSON-RPC request body
rpc_json() {
  local method=$1; shift
  local out="{\"jsonrpc\":\"2.0\",\"method\":\"$method\",\"id\":1,\"params\":[" sep="" p
  for p in "$@"; do
    if [[ $p =~ ^-?[0-9]+$ ]]; then
      out+="$sep$p"
    else
      p=${p#s:}
      p=${p//\\/\\\\}; p=${p//\"/\\\"}
      out+="$sep\"$p\""
    fi
    sep=","
  done
  echo "$out]}"
}

cmd_rpc() {
  [ $# -ge 2 ] || usage
  local name=$1; shift
  local url; url=$(rpc_url "$name")
  curl -sS --max-time 10 -H 'Content-Type: application/json' -d "$(rpc_json "$@")" "$url"
}

cmd_start() {
  [ $# -eq 4 ] || usage
  local name=$1 ip=$2 port=$3 data=$4
  local dir=$RUN/$name
  [ -d "$data" ] || die "data dir $data does not exist"
  data=$(cd "$data" && pwd)
  mkdir -p "$dir"
  if alive "$dir/pid"; then die "SBC $name is already running (pid $(cat "$dir/pid"))"; fi
  local cfg=${TG_CFG:-$ROOT/sbc/kamailio/tollgate.cfg}
  local defs=()
  {
    echo "TG_IP=$ip"
    echo "TG_PORT=$port"
    echo "TG_RPC_PORT=${TG_RPC_PORT:-$((port + 1))}"
    echo "TG_DB_URL=text://$data"
    echo "TG_RELAY=${TG_RELAY:-127.0.0.1:5070}"
    if [ -n "${TG_GEOIP_DB:-}" ]; then echo "TG_GEOIP_DB=$TG_GEOIP_DB"; fi
    if [ -n "${TG_TLS_CFG:-}" ]; then
      echo "TG_TLS_CFG=$TG_TLS_CFG"
      echo "TG_TLS_PORT=${TG_TLS_PORT:-$((port + 2))}"
    fi
    if [ -n "${TG_FLEET_REDIS:-}" ]; then
      echo "TG_FLEET_REDIS='$TG_FLEET_REDIS'"
      echo "TG_FLEET_KEY=${TG_FLEET_KEY:-tg:local}"
      echo "TG_SBC_ID=${TG_SBC_ID:-$name}"
      echo "TG_FLEET_SIZE=${TG_FLEET_SIZE:-1}"
    fi
  } > "$dir/env.new"
  # the store's password may be in it
  chmod 600 "$dir/env.new"
  mv "$dir/env.new" "$dir/env"
  [ -n "${TG_GEOIP_DB:-}" ] && defs+=(-A WITH_GEOIP)
  [ -n "${TG_TLS_CFG:-}" ] && defs+=(-A WITH_TLS)
  [ -n "${TG_FLEET_REDIS:-}" ] && defs+=(-A WITH_FLEET)
  [ "${TG_DEBUG:-0}" = 1 ] && defs+=(-A WITH_DEBUG)
  [ "${TG_SHM_PREFAULT:-0}" = 1 ] && defs+=(-A WITH_SHM_PREFAULT)
  set -a
  # shellcheck disable=SC1091
  . "$dir/env"
  set +a
  if ! kamailio -c -f "$cfg" "${defs[@]}" > "$dir/check.log" 2>&1; then
    cat "$dir/check.log" >&2
    die "kamailio -c rejected $cfg"
  fi
  local wrap=()
  # shellcheck disable=SC2206
  [ -n "${TG_KAMAILIO_WRAP:-}" ] && wrap=(${TG_KAMAILIO_WRAP})
  "${wrap[@]}" kamailio -f "$cfg" "${defs[@]}" -DD -E -m "${TG_SHM_MB:-256}" -M "${TG_PKG_MB:-16}" \
    -x tlsf -X tlsf > "$dir/log" 2>&1 < /dev/null &
  echo $! > "$dir/pid"
  local i
  for i in $(seq 1 $(( ${TG_START_S:-10} * 10 ))); do
    if ! alive "$dir/pid"; then
      tail -20 "$dir/log" >&2
      die "SBC $name exited during start (log: $dir/log)"
    fi
    if cmd_rpc "$name" core.uptime 2>/dev/null | grep -q '"uptime"'; then
      echo "SBC $name up: pid $(cat "$dir/pid"), sip $ip:$port udp+tcp, rpc http://$ip:$TG_RPC_PORT/RPC, log $dir/log" >&2
      return 0
    fi
    sleep 0.1
  done
  cmd_stop "$name" || true
  die "SBC $name did not answer RPC within ${TG_START_S:-10} s (log: $dir/log)"
}

stop_pid() {
  local pidf=$1 what=$2 i
  if ! alive "$pidf"; then rm -f "$pidf"; echo "$what not running" >&2; return 0; fi
  local pid; pid=$(cat "$pidf")
  kill -TERM "$pid"
  for i in $(seq 1 $(( ${TG_STOP_S:-5} * 10 ))); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$pidf"; echo "$what stopped" >&2; return 0; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pidf"
  echo "$what killed after ${TG_STOP_S:-5} s" >&2
}

cmd_stop() {
  [ $# -eq 1 ] || usage
  stop_pid "$RUN/$1/pid" "SBC $1"
}

cmd_status() {
  [ $# -eq 1 ] || usage
  local dir=$RUN/$1
  if alive "$dir/pid"; then
    # shellcheck disable=SC1091
    . "$dir/env"
    echo "SBC $1 running: pid $(cat "$dir/pid"), sip $TG_IP:$TG_PORT, rpc $TG_IP:$TG_RPC_PORT"
  else
    echo "SBC $1 not running"
    return 1
  fi
}

cmd_uas_start() {
  [ $# -eq 3 ] || usage
  local name=$1 ip=$2 port=$3 dir=$RUN/uas-$1
  mkdir -p "$dir"
  if alive "$dir/pid"; then die "UAS $name is already running"; fi
  # bounded: the UAS quits by itself after TG_UAS_TIMEOUT (default 900 s)
  (cd "$dir" && exec sipp -sf "$ROOT/sbc/sipp/uas.xml" -i "$ip" -p "$port" -t u1 -nostdin \
    -timeout "${TG_UAS_TIMEOUT:-900}s" -trace_err -error_file "$dir/errors.log" \
    -trace_stat -stf "$dir/stat.csv" -fd 1 > "$dir/log" 2>&1 < /dev/null) &
  echo $! > "$dir/pid"
  sleep 0.3
  alive "$dir/pid" || { cat "$dir/log" >&2; die "UAS $name did not start"; }
  echo "UAS $name up: pid $(cat "$dir/pid"), sip $ip:$port udp" >&2
}

cmd_uas_stop() {
  [ $# -eq 1 ] || usage
  stop_pid "$RUN/uas-$1/pid" "UAS $1"
}

[ $# -ge 1 ] || usage
cmd=$1; shift
case $cmd in
  start) cmd_start "$@" ;;
  stop) cmd_stop "$@" ;;
  status) cmd_status "$@" ;;
  rpc) cmd_rpc "$@" ;;
  uas-start) cmd_uas_start "$@" ;;
  uas-stop) cmd_uas_stop "$@" ;;
  *) usage ;;
esac
