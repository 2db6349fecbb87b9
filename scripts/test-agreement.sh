#!/usr/bin/env bash
# The agreement test: the evaluator and the real SBC must decide every call
# alike. Compiles the example tenants, renders TEST COPIES of them (source
# networks mapped to loopback, rate limits lifted, crypto-free "-plain" twins
# of tenants that require TLS; see operator/kamailio/examples/agreement.rs) into ONE
# data dir with the Kamailio renderer, starts one SBC (tollgate.cfg) with a
# test GeoIP database and a UAS, and places the same generated calls from
# every test source with SIPp. Every call's SIP code and X-Tollgate-Rule is
# compared with the evaluator's decision at the same instant.
#
#   scripts/test-agreement.sh
#
# Settings: TG_AGREE_IP (the SBC's address, default 127.201.0.1; the UAS takes
# the next address), TG_AGREE_SEED (number generator seed), TOLLGATE_RUN
# (runtime files, default /tmp/tollgate-run). Bounded: every SIPp run has -m,
# -timeout and `timeout`; about a minute in all.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

scripts/sbc-install.sh

RUN=${TOLLGATE_RUN:-/tmp/tollgate-run}
export TOLLGATE_RUN=$RUN
NAME=tgagree
SBC_IP=${TG_AGREE_IP:-127.201.0.1}
UAS_IP=${SBC_IP%.*}.$(( ${SBC_IP##*.} + 1 ))
SBC_PORT=5060
UAS_PORT=5070
WORK=$RUN/$NAME-work
PY=$(python_env)

say "building the agreement helper"
build_all
HELPER=$CARGO_TARGET_DIR/debug/examples/agreement

rm -rf "$WORK"
mkdir -p "$WORK"
say "compiling the example tenants, rendering the test fleet"
"$HELPER" prepare examples/policies "$WORK" --seed "${TG_AGREE_SEED:-20260101}"

# the test GeoIP database: every test source's country (geo.txt: ip/32 CC)
"$PY" - "$WORK/geo.txt" "$WORK/geo.mmdb" <<'PY'
import sys
from mmdb_writer import MMDBWriter
from netaddr import IPSet
w = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoIP2-Country",
               languages=["en"], description="tollgate agreement test geo")
for line in open(sys.argv[1]):
    net, cc = line.split()
    w.insert_network(IPSet([net]), {"country": {"iso_code": cc, "names": {"en": cc}}})
w.to_db_file(sys.argv[2])
PY

cleanup() {
  scripts/sbc.sh stop "$NAME" 2>/dev/null || true
  scripts/sbc.sh uas-stop "$NAME" 2>/dev/null || true
}
trap cleanup EXIT
cleanup

say "starting the UAS ($UAS_IP:$UAS_PORT) and the SBC ($SBC_IP:$SBC_PORT)"
TG_UAS_TIMEOUT=600 scripts/sbc.sh uas-start "$NAME" "$UAS_IP" "$UAS_PORT"
TG_RELAY=$UAS_IP:$UAS_PORT TG_GEOIP_DB=$WORK/geo.mmdb scripts/sbc.sh start "$NAME" "$SBC_IP" "$SBC_PORT" "$WORK/data"

say "calls: one SIPp run per source, one call at a time"
t0=$(date +%s%N)
total=0
while IFS=$'\t' read -r src label; do
  csv=$WORK/calls/$src.csv
  n=$(( $(wc -l < "$csv") - 1 ))
  total=$((total + n))
  ts=$(date +%s%N)
  timeout 300 sipp "$SBC_IP:$SBC_PORT" -sf sbc/sipp/uac.xml -inf "$csv" -i "$src" -p 0 -t u1 \
    -m "$n" -l 1 -r 1000 -d 0 -nostdin -timeout 240s -trace_logs -log_file "$WORK/calls/$src.log" \
    -trace_err -error_file "$WORK/calls/$src.err" > "$WORK/calls/$src.out" 2>&1 || true
  got=$(grep -c '^RESULT ' "$WORK/calls/$src.log" 2>/dev/null || true)
  printf '  %-16s %4d calls, %4d results, %5d ms  (%s)\n' "$src" "$n" "$got" \
    $(( ($(date +%s%N) - ts) / 1000000 )) "$label"
done < "$WORK/sources.tsv"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "$total calls in $ms ms"

say "comparing with the evaluator"
"$HELPER" compare "$WORK"
