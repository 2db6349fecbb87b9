#!/usr/bin/env bash
# Prometheus and Alertmanager (Debian's, scripts/monitoring-install.sh) on
# loopback, for tests: Prometheus scrapes the given targets every second and
# evaluates the given rule files every second; Alertmanager sends every
# alert group at once (group_wait 0s, group_interval 1s, repeat_interval
# 4h or --repeat-interval, one group per label set) to one webhook with a
# bearer token.
#
#   scripts/monitoring.sh start DIR [--target HOST:PORT]... [--scrape-token-file F]
#       [--operator-target HOST:PORT]... [--rules FILE]... [--webhook URL] [--webhook-token-file F]
#       [--prometheus ADDR] [--alertmanager ADDR] [--repeat-interval DURATION]
#   scripts/monitoring.sh stop DIR
#
# Defaults: Prometheus on 127.0.0.1:19090, Alertmanager on 127.0.0.1:19093
# (its cluster port is switched off). DIR receives the configs
# (prometheus.yml, alertmanager.yml), the data dirs, *.log and *.pid; DIR/env
# records the addresses (PROM_URL, AM_URL). `start` returns when both
# answer /-/ready (30 s at most each) and fails with the log's tail if not.
# Targets (job tollgate-agent) are scraped at /metrics with `authorization:
# credentials_file` when --scrape-token-file is given; operator targets (job
# tollgate-operator) at /metrics without a token.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

usage() { sed -n '2,22p' "$0" >&2; exit 2; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_one() { # PIDFILE
  local f=$1 pid i
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

wait_ready() { # NAME URL LOG PIDFILE
  local i
  for i in $(seq 1 300); do
    if curl -sf --max-time 1 -o /dev/null "$2/-/ready"; then return 0; fi
    alive "$4" || break
    sleep 0.1
  done
  tail -20 "$3" >&2 || true
  die "$1 is not ready at $2 (log $3)"
}

cmd_start() {
  [ $# -ge 1 ] || usage
  local dir=$1; shift
  local targets=() op_targets=() rules=() scrape_tok="" hook="" hook_tok="" prom=127.0.0.1:19090 am=127.0.0.1:19093
  local repeat=4h
  while [ $# -gt 0 ]; do
    case $1 in
      --target) targets+=("$2"); shift 2 ;;
      --operator-target) op_targets+=("$2"); shift 2 ;;
      --rules) rules+=("$(realpath "$2")"); shift 2 ;;
      --scrape-token-file) scrape_tok=$(realpath "$2"); shift 2 ;;
      --webhook) hook=$2; shift 2 ;;
      --webhook-token-file) hook_tok=$(realpath "$2"); shift 2 ;;
      --prometheus) prom=$2; shift 2 ;;
      --alertmanager) am=$2; shift 2 ;;
      --repeat-interval) repeat=$2; shift 2 ;;
      *) usage ;;
    esac
  done
  command -v prometheus >/dev/null && command -v prometheus-alertmanager >/dev/null \
    || die "run scripts/monitoring-install.sh first"
  mkdir -p "$dir"
  dir=$(realpath "$dir")
  cmd_stop "$dir"
  rm -rf "$dir/prom-data" "$dir/am-data"

  {
    echo "global:"
    echo "  scrape_interval: 1s"
    echo "  scrape_timeout: 1s"
    echo "  evaluation_interval: 1s"
    echo "rule_files:"
    if [ ${#rules[@]} -eq 0 ]; then echo "  []"; fi
    for r in "${rules[@]}"; do echo "  - '$r'"; done
    echo "alerting:"
    echo "  alertmanagers:"
    echo "    - static_configs:"
    echo "        - targets: ['$am']"
    echo "scrape_configs:"
    echo "  - job_name: tollgate-agent"
    echo "    metrics_path: /metrics"
    if [ -n "$scrape_tok" ]; then
      echo "    authorization:"
      echo "      type: Bearer"
      echo "      credentials_file: '$scrape_tok'"
    fi
    echo "    static_configs:"
    echo "      - targets: [$(printf "'%s'," "${targets[@]}" | sed 's/,$//')]"
    if [ ${#op_targets[@]} -gt 0 ]; then
      echo "  - job_name: tollgate-operator"
      echo "    metrics_path: /metrics"
      echo "    static_configs:"
      echo "      - targets: [$(printf "'%s'," "${op_targets[@]}" | sed 's/,$//')]"
    fi
  } > "$dir/prometheus.yml"
  [ ${#targets[@]} -gt 0 ] || sed -i 's/targets: \[\x27\x27\]/targets: []/' "$dir/prometheus.yml"

  {
    echo "route:"
    echo "  receiver: tollgate"
    echo "  group_by: ['...']"
    echo "  group_wait: 0s"
    echo "  group_interval: 1s"
    echo "  repeat_interval: $repeat"
    echo "receivers:"
    echo "  - name: tollgate"
    if [ -n "$hook" ]; then
      echo "    webhook_configs:"
      echo "      - url: '$hook'"
      echo "        send_resolved: true"
      if [ -n "$hook_tok" ]; then
        echo "        http_config:"
        echo "          authorization:"
        echo "            type: Bearer"
        echo "            credentials_file: '$hook_tok'"
      fi
    fi
  } > "$dir/alertmanager.yml"

  promtool check config "$dir/prometheus.yml" > "$dir/promtool.log" 2>&1 \
    || { cat "$dir/promtool.log" >&2; die "the Prometheus configuration is refused"; }

  prometheus-alertmanager --config.file="$dir/alertmanager.yml" --storage.path="$dir/am-data" \
    --web.listen-address="$am" --cluster.listen-address= > "$dir/alertmanager.log" 2>&1 &
  echo $! > "$dir/alertmanager.pid"
  prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/prom-data" \
    --web.listen-address="$prom" --web.enable-lifecycle > "$dir/prometheus.log" 2>&1 &
  echo $! > "$dir/prometheus.pid"
  printf 'PROM_URL=http://%s\nAM_URL=http://%s\n' "$prom" "$am" > "$dir/env"
  wait_ready Alertmanager "http://$am" "$dir/alertmanager.log" "$dir/alertmanager.pid"
  wait_ready Prometheus "http://$prom" "$dir/prometheus.log" "$dir/prometheus.pid"
  echo "Prometheus http://$prom (pid $(cat "$dir/prometheus.pid")), Alertmanager http://$am (pid $(cat "$dir/alertmanager.pid")), logs in $dir"
}

cmd_stop() {
  [ $# -eq 1 ] || usage
  stop_one "$1/prometheus.pid"
  stop_one "$1/alertmanager.pid"
}

case ${1:-} in
  start) shift; cmd_start "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  *) usage ;;
esac
