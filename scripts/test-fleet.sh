#!/usr/bin/env bash
# scripts/fleet.sh end to end: a fleet of three local SBCs (real Kamailio +
# tollgate-agent each, one shared SIPp UAS) started with an empty policy set;
# a compiled example tenant (acme, the agreement test's loopback copy) PUT to
# every agent over HTTP with the fleet's token; one allowed and one denied
# call through every SBC; the fleet stopped and nothing of it left running.
#
#   scripts/test-fleet.sh
#
# Settings: TG_FLEET_NET (third octet of the fleet's addresses, default 203),
# TOLLGATE_RUN (default /tmp/tollgate-run). Bounded: curl --max-time, SIPp
# -timeout plus `timeout`. About half a minute once built.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

scripts/sbc-install.sh

RUN=${TOLLGATE_RUN:-/tmp/tollgate-run}
export TOLLGATE_RUN=$RUN
export TG_FLEET_NET=${TG_FLEET_NET:-203}
NAME=tgfleettest
N=3
WORK=$RUN/$NAME-work
PY=$(python_env)


say "building tollgate-agent and the agreement helper"
build_all
export TG_AGENT_BIN=$CARGO_TARGET_DIR/debug/tollgate-agent
HELPER=$CARGO_TARGET_DIR/debug/examples/agreement

cleanup() { scripts/fleet.sh stop "$NAME" 2>/dev/null || true; }
# the main pids of every process of the fleet (agents, Kamailio, the UAS)
fleet_pids() { cat "$RUN/$NAME"/sbc*/agent.pid "$RUN/$NAME"-*/pid "$RUN/uas-$NAME/pid" 2>/dev/null | sort -n | tr '\n' ' '; }
none_alive() { local p; for p in $1; do if kill -0 "$p" 2>/dev/null; then return 1; fi; done; }
trap cleanup EXIT
cleanup
rm -rf "$WORK"
mkdir -p "$WORK"

say "a compiled example tenant (loopback copy) and a GeoIP db for its country rules"
"$HELPER" prepare examples/policies "$WORK/agree" --seed "${TG_AGREE_SEED:-20260101}" >/dev/null
"$PY" - "$WORK/agree/fleet" "$WORK/acme.json" "$WORK/agree/geo.txt" "$WORK/geo.mmdb" <<'PY'
import json, os, sys, yaml
from mmdb_writer import MMDBWriter
from netaddr import IPSet
src, out, geo, mmdb = sys.argv[1:5]
for f in sorted(os.listdir(src)):
    p = yaml.safe_load(open(os.path.join(src, f)))
    if p["tenant"] == "acme":
        json.dump({"revision": "acme-r1", "policy": p}, open(out, "w"))
w = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoIP2-Country",
               languages=["en"], description="tollgate fleet test geo")
for line in open(geo):
    net, cc = line.split()
    w.insert_network(IPSet([net]), {"country": {"iso_code": cc, "names": {"en": cc}}})
w.to_db_file(mmdb)
PY
[ -s "$WORK/acme.json" ] || die "the agreement copies hold no acme tenant"
export TG_GEOIP_DB=$WORK/geo.mmdb

say "start a fleet of $N"
scripts/fleet.sh start "$NAME" "$N" | tee "$WORK/start.out"
check "start printed $N SBC lines" [ "$(grep -c ' sip=.* agent=http://.* rpc=http://' "$WORK/start.out")" = "$N" ]
TSV=$RUN/$NAME/fleet.tsv
check "fleet.tsv lists $N SBCs" [ "$(grep -vc '^#' "$TSV")" = "$N" ]
check "status: every part up" scripts/fleet.sh status "$NAME"
pids0=$(fleet_pids)
check "$((2 * N + 1)) processes started: $pids0" [ "$(echo $pids0 | wc -w)" = $((2 * N + 1)) ]
scripts/fleet.sh start "$NAME" "$N" > "$WORK/start2.out"
check "a second start keeps the running processes" [ "$(fleet_pids)" = "$pids0" ]
check "and prints the same lines" cmp -s "$WORK/start.out" "$WORK/start2.out"

TOKEN=$(cat "$RUN/$NAME/token")
ACME=127.51.100.20   # acme's allowed network in the loopback copy
OTHER=127.0.0.9      # no tenant's source
i=0
while IFS=$'\t' read -r sbc sip agent _ _ _; do
  case $sbc in '#'*) continue ;; esac
  i=$((i + 1))
  say "$sbc ($sip, $agent)"
  check "$sbc: fail closed before any policy: $(scripts/fleet.sh call "$NAME" "$i" $ACME +12125550100)" \
    [ "$(scripts/fleet.sh call "$NAME" "$i" $ACME +12125550100)" = "403 src:unknown" ]
  code=$(curl -sS --max-time 120 -o "$WORK/resp" -w '%{http_code}' -X PUT -H "Authorization: Bearer wrong-token-0123456789" \
    -H 'Content-Type: application/json' --data-binary "@$WORK/acme.json" "$agent/v1/tenants/acme")
  check "$sbc: PUT with a wrong token refused: $code" [ "$code" = 401 ]
  code=$(curl -sS --max-time 120 -o "$WORK/resp" -w '%{http_code}' -X PUT -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/json' --data-binary "@$WORK/acme.json" "$agent/v1/tenants/acme")
  check "$sbc: PUT acme-r1: $code" [ "$code" = 200 ]
  got=$(scripts/fleet.sh call "$NAME" "$i" $ACME +12125550100 || true)
  check "$sbc: acme -> +12125550100 allowed: $got" [ "$got" = "200 dst:national" ]
  got=$(scripts/fleet.sh call "$NAME" "$i" $ACME +12129761234 || true)
  check "$sbc: acme -> +12129761234 (976 pay-per-call) denied: $got" bash -c "[[ '$got' == '403 dst:'* ]]"
  got=$(scripts/fleet.sh call "$NAME" "$i" $OTHER +12125550100 || true)
  check "$sbc: unknown source denied: $got" [ "$got" = "403 src:unknown" ]
  code=$(curl -sS --max-time 10 -o "$WORK/resp" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$agent/v1/state")
  check "$sbc: state says acme-r1, consistent" "$PY" -c '
import json,sys; t=json.load(open(sys.argv[1]))["tenants"]["acme"]
sys.exit(0 if t["revision"] == "acme-r1" and t["consistent"] else 1)' "$WORK/resp"
done < "$TSV"
check "calls went through all $N SBCs" [ "$i" = "$N" ]

say "stop"
scripts/fleet.sh stop "$NAME"
check "status after stop reports the fleet down" bash -c "! scripts/fleet.sh status '$NAME' >/dev/null"
check "no process of the fleet left ($pids0)" none_alive "$pids0"

say "a half-started fleet stops cleanly"
scripts/fleet.sh start "$NAME" 1 > /dev/null
pids1=$(fleet_pids)
apid=$(cat "$RUN/$NAME/sbc1/agent.pid")
kill "$apid"
for _ in $(seq 1 50); do kill -0 "$apid" 2>/dev/null || break; sleep 0.1; done
check "status notices the dead agent" bash -c "! scripts/fleet.sh status '$NAME' >/dev/null"
scripts/fleet.sh stop "$NAME"
check "nothing left after stopping a half-running fleet ($pids1)" none_alive "$pids1"

echo
echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
