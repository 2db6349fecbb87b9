#!/usr/bin/env bash
# The SBC's crypto requirements and IPv6 sources, proven with real calls:
# a test PKI made here with openssl, one SBC with TLS (sbc/kamailio/tollgate.cfg,
# -A WITH_TLS) and a UAS; a tenant "secure" (127.50.0.0/16) that requires TLS,
# a client certificate and SRTP; calls made with sbc/tls_call.py (Python
# stdlib ssl: Debian's SIPp has no TLS). Then a second SBC listening on [::1]
# with a tenant network ::1/128 and an IPv6 UAS: allowed, then (the network
# changed to ::2/128 and reloaded) the same source is unknown.
#
#   scripts/test-tls.sh
#
# Settings: TG_TLS_TEST_IP (the SBC's address, default 127.0.79.1; the UAS
# listens on the next address), TG_TLS_TEST_V6_PORT (default 5260: SBC, +1 RPC,
# +10 UAS, all on ::1), TOLLGATE_RUN (runtime files, default /tmp/tollgate-run).
# Bounded: every call has a 5 s transaction timeout and `timeout 20`.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

scripts/sbc-install.sh

RUN=${TOLLGATE_RUN:-/tmp/tollgate-run}
export TOLLGATE_RUN=$RUN
NAME=tgtls
NAME6=tgtls6
SBC_IP=${TG_TLS_TEST_IP:-127.0.79.1}
UAS_IP=${SBC_IP%.*}.$(( ${SBC_IP##*.} + 1 ))
SBC_PORT=5060
TLS_PORT=5062
UAS_PORT=5070
V6_PORT=${TG_TLS_TEST_V6_PORT:-5260}
V6_UAS_PORT=$((V6_PORT + 10))
WORK=$RUN/$NAME-work
PKI=$WORK/pki
DATA=$WORK/data
DATA6=$WORK/data6
PY=$(python_env)

rm -rf "$WORK"
mkdir -p "$PKI" "$DATA" "$DATA6" "$WORK/calls"

say "test PKI (openssl): CA, server cert for $SBC_IP, client certs from the CA and from a rogue CA"
ossl() { openssl "$@" 2> "$PKI/openssl.err" || { cat "$PKI/openssl.err" >&2; die "openssl $1 failed"; }; }
# new_ca NAME CN
new_ca() {
  ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=$2" -keyout "$PKI/$1.key" -out "$PKI/$1.pem" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}
# new_cert NAME CN CA EXTENSIONS
new_cert() {
  ossl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -subj "/CN=$2" -keyout "$PKI/$1.key" -out "$PKI/$1.csr"
  printf '%s\n' "$4" > "$PKI/$1.ext"
  ossl x509 -req -in "$PKI/$1.csr" -CA "$PKI/$3.pem" -CAkey "$PKI/$3.key" -CAcreateserial \
    -days 2 -extfile "$PKI/$1.ext" -out "$PKI/$1.pem"
}
new_ca ca "Tollgate Test CA"
new_ca rogue-ca "Rogue Test CA"
new_cert server "$SBC_IP" ca "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:$SBC_IP,IP:127.0.0.1"
new_cert client "pbx.secure.test" ca "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
new_cert rogue "pbx.rogue.test" rogue-ca "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
openssl verify -CAfile "$PKI/ca.pem" "$PKI/server.pem" "$PKI/client.pem" >&2
if openssl verify -CAfile "$PKI/ca.pem" "$PKI/rogue.pem" > /dev/null 2>&1; then die "the rogue cert verifies against the CA"; fi

# verify_certificate = yes makes the server ask for a client certificate and
# check it against ca_list (a certificate that fails the check aborts the
# handshake); require_certificate = no lets a client WITHOUT a certificate
# connect, so the policy (is_peer_verified()) rejects it with its own code/rule.
cat > "$WORK/tls.cfg" <<EOF
[server:default]
method = TLSv1.2+
verify_certificate = yes
require_certificate = no
private_key = $PKI/server.key
certificate = $PKI/server.pem
ca_list = $PKI/ca.pem

[client:default]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
EOF

# Test data: sbc/testdata plus tenant "secure" (tls + cert + srtp required).
HT_HEADER='id(int,auto) key_name(string) key_type(int) value_type(int) key_value(string) expires(int)'
MT_HEADER='id(int,auto) tname(string) tprefix(string) tvalue(string)'
AD_HEADER='id(int,auto) grp(int) ip_addr(string) mask(int) port(int) tag(string)'
cp sbc/testdata/* "$DATA/"
rm -f "$DATA/make-geoip.py" "$DATA/version"
# tree_rows TENANT ID0 -> mtree rows: d: 1 national allowed, 2-9 denied; c: classes
tree_rows() {
  local t=$1 id=$2 d
  echo "$id:d\\:$t:1:a,dst\\:national"; id=$((id + 1))
  for d in 2 3 4 5 6 7 8 9; do echo "$id:d\\:$t:$d:d,dst\\:international"; id=$((id + 1)); done
  echo "$id:c\\:$t:1:national"; id=$((id + 1))
  for d in 2 3 4 5 6 7 8 9; do echo "$id:c\\:$t:$d:international"; id=$((id + 1)); done
}
echo '100:113:127.50.0.0:16:0:secure|allow|src\:127.50.0.0/16|' >> "$DATA/address"
cat >> "$DATA/tg_tenant" <<'EOF'
100:secure\:\:cc:0:0:1:0
105:secure\:\:home:0:0:3028:0
101:secure\:\:rev:0:0:secure-r1:0
102:secure\:\:tls:0:0:1:0
103:secure\:\:cert:0:0:1:0
104:secure\:\:srtp:0:0:1:0
EOF
tree_rows secure 100 >> "$DATA/mtree"
# in the SBC's layout (fleet-wide trees in their tables, tenants in shards)
"$PY" scripts/sbc-data.py convert "$DATA" "$DATA"

# IPv6 data: one tenant "v6" whose network is ::1/128 (grp = 129 - 128 = 1).
cp "$DATA/version" "$DATA/pl_pipes" "$DATA6/"
for t in tg_geo tg_emerg tg_limit tg_window tg_block; do echo "$HT_HEADER" > "$DATA6/$t"; done
write_addr6() { # NETWORK (db_text escaped address) MASK RULE
  printf '%s\n1:%d:%s:%d:0:v6|allow|%s|\n' "$AD_HEADER" $((129 - $2)) "$1" "$2" "$3" > "$DATA6/address.new"
  mv "$DATA6/address.new" "$DATA6/address"
}
write_addr6 '\:\:1' 128 'src\:\:\:1/128'
# home 3028 is the US key of the dialling tree (sbc/testdata/tg_tenant: acme)
printf '%s\n1:v6\\:\\:cc:0:0:1:0\n2:v6\\:\\:rev:0:0:v6-r1:0\n3:v6\\:\\:home:0:0:3028:0\n' "$HT_HEADER" > "$DATA6/tg_tenant"
# the fleet-wide trees (dialled-number reading, countries) as every bundle has them
{ echo "$MT_HEADER"; tree_rows v6 1; grep -E '^[0-9]+:tollgate-(dial|country):' sbc/testdata/mtree; } > "$DATA6/mtree"
"$PY" scripts/sbc-data.py convert "$DATA6" "$DATA6"

cleanup() {
  scripts/sbc.sh stop "$NAME" 2>/dev/null || true
  scripts/sbc.sh uas-stop "$NAME" 2>/dev/null || true
  scripts/sbc.sh stop "$NAME6" 2>/dev/null || true
  scripts/sbc.sh uas-stop "$NAME6" 2>/dev/null || true
}
trap cleanup EXIT
cleanup

FAILS=0
PASSES=0
fail() { printf 'FAIL: %s\n' "$*" >&2; FAILS=$((FAILS + 1)); }
pass() { printf 'ok    %s\n' "$*" >&2; PASSES=$((PASSES + 1)); }

# tcall WHAT EXPECT_LINE1 [EXPECT_LINE2] -- tls_call.py ARGS...
# asserts the first output line (and the second, e.g. "BYE 200") exactly.
SEQ=0
tcall() {
  local what=$1 want1=$2 want2=$3; shift 3
  [ "$1" = -- ] && shift
  SEQ=$((SEQ + 1))
  local f=$WORK/calls/$SEQ rc=0
  timeout 20 "$PY" sbc/tls_call.py --timeout 5 "$@" > "$f.out" 2> "$f.err" || rc=$?
  local l1 l2; l1=$(sed -n 1p "$f.out"); l2=$(sed -n 2p "$f.out")
  if [[ $l1 != $want1 ]] || { [ -n "$want2" ] && [ "$l2" != "$want2" ]; }; then
    fail "$what: wanted '$want1${want2:+ / $want2}', got '$l1${l2:+ / $l2}' (exit $rc) $(head -c 300 "$f.err")"
  else
    pass "$what: $l1${l2:+ / $l2} (exit $rc)"
  fi
}

say "starting the UAS ($UAS_IP:$UAS_PORT) and the SBC ($SBC_IP:$SBC_PORT udp+tcp, tls $TLS_PORT)"
TG_UAS_TIMEOUT=120 scripts/sbc.sh uas-start "$NAME" "$UAS_IP" "$UAS_PORT"
TG_RELAY=$UAS_IP:$UAS_PORT TG_TLS_CFG=$WORK/tls.cfg TG_TLS_PORT=$TLS_PORT \
  scripts/sbc.sh start "$NAME" "$SBC_IP" "$SBC_PORT" "$DATA"

SRC=127.50.1.1
TLS=(--sbc "$SBC_IP:$TLS_PORT" --src "$SRC" --transport tls --ca "$PKI/ca.pem")
CERT=(--cert "$PKI/client.pem" --key "$PKI/client.key")

say "tenant secure: TLS + client certificate + SRTP required"
tcall "UDP call" "RESULT 403 crypto:tls TLS Required" "" -- \
  --sbc "$SBC_IP:$SBC_PORT" --src "$SRC" --transport udp --srtp
tcall "TCP call" "RESULT 403 crypto:tls TLS Required" "" -- \
  --sbc "$SBC_IP:$SBC_PORT" --src "$SRC" --transport tcp --srtp
tcall "TLS, no client certificate" "RESULT 403 crypto:client-certificate Certificate Required" "" -- \
  "${TLS[@]}" --srtp
tcall "TLS, certificate from a rogue CA (the handshake is refused)" "TLS-REJECTED *" "" -- \
  "${TLS[@]}" --cert "$PKI/rogue.pem" --key "$PKI/rogue.key" --srtp
tcall "TLS 1.2, certificate from a rogue CA (refused in the handshake)" "TLS-REJECTED handshake: *" "" -- \
  "${TLS[@]}" --tls12 --cert "$PKI/rogue.pem" --key "$PKI/rogue.key" --srtp
for _ in $(seq 1 20); do  # the SBC may log just after the client saw the alert
  n=$(grep -c 'certificate verify failed' "$RUN/$NAME/log" || true)
  [ "$n" -ge 2 ] && break
  sleep 0.1
done
[ "$n" = 2 ] && pass "SBC log: 2 x 'certificate verify failed' (the rogue certificates)" \
  || fail "SBC log: $n x 'certificate verify failed', wanted 2"
tcall "TLS 1.2 + valid certificate, SAVP" "RESULT 200 dst:national OK" "BYE 200" -- \
  "${TLS[@]}" "${CERT[@]}" --tls12 --srtp
tcall "TLS + valid certificate, RTP/AVP offer" "RESULT 488 crypto:srtp SRTP Required" "" -- \
  "${TLS[@]}" "${CERT[@]}"
tcall "TLS + valid certificate, RTP/SAVP + a=crypto" "RESULT 200 dst:national OK" "BYE 200" -- \
  "${TLS[@]}" "${CERT[@]}" --srtp
tcall "TLS + valid certificate, SAVP, denied destination" \
  "RESULT 403 dst:international Destination Denied" "" -- "${TLS[@]}" "${CERT[@]}" --srtp --number +4930123456
tcall "TLS client without a CA file still gets the policy's answer" \
  "RESULT 403 crypto:client-certificate Certificate Required" "" -- \
  --sbc "$SBC_IP:$TLS_PORT" --src "$SRC" --transport tls --srtp
# acme (no crypto requirements) over TLS: TLS does not get in the way
tcall "acme over TLS (no requirements)" "RESULT 200 dst:national OK" "BYE 200" -- \
  --sbc "$SBC_IP:$TLS_PORT" --src 127.10.1.1 --transport tls --ca "$PKI/ca.pem"

rpc() { scripts/sbc.sh rpc "$NAME" "$@"; }
stat=$(rpc htable.dump tg_stat | "$PY" -c '
import json, sys
got = {i["name"]: int(i["value"]) for s in json.load(sys.stdin)["result"] for i in s["slot"]}
print(" ".join("%s=%s" % (k, v) for k, v in sorted(got.items()) if k.startswith("secure::")))')
# every rejection here comes after the class lookup: the number's class
# (+12125550100 national, +4930123456 international) counts with its outcome
want="secure::allow::dst:national=2 secure::class::allow::national=2 secure::class::deny::international=1 secure::class::deny::national=5 secure::country::US=2 secure::deny::crypto:client-certificate=2 secure::deny::crypto:srtp=1 secure::deny::crypto:tls=2 secure::deny::dst:international=1"
[ "$stat" = "$want" ] && pass "tg_stat: $stat" || fail "tg_stat: got '$stat', wanted '$want'"

say "IPv6: an SBC on [::1]:$V6_PORT, tenant v6 = ::1/128, UAS on [::1]:$V6_UAS_PORT"
v6ok=1
if ! python3 -c 'import socket; s=socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.bind(("::1", 0))' 2>/dev/null; then
  fail "no IPv6 loopback (::1) on this machine"; v6ok=0
fi
if [ $v6ok = 1 ]; then
  TG_UAS_TIMEOUT=120 scripts/sbc.sh uas-start "$NAME6" ::1 "$V6_UAS_PORT" || { fail "IPv6 UAS did not start"; v6ok=0; }
fi
if [ $v6ok = 1 ]; then
  TG_RELAY="[::1]:$V6_UAS_PORT" scripts/sbc.sh start "$NAME6" "[::1]" "$V6_PORT" "$DATA6" \
    || { fail "the SBC did not start on [::1]"; v6ok=0; }
fi
if [ $v6ok = 1 ]; then
  V6=(--sbc "[::1]:$V6_PORT" --src ::1)
  tcall "IPv6 UDP from ::1 (listed)" "RESULT 200 dst:national OK" "BYE 200" -- "${V6[@]}" --transport udp
  tcall "IPv6 TCP from ::1 (listed)" "RESULT 200 dst:national OK" "BYE 200" -- "${V6[@]}" --transport tcp
  tcall "IPv6 UDP from ::1, denied destination" "RESULT 403 dst:international Destination Denied" "" -- \
    "${V6[@]}" --transport udp --number +4930123456
  # the only IPv6 loopback address is ::1: make it an unlisted source by data
  write_addr6 '\:\:2' 128 'src\:\:\:2/128'
  touch -d "@$(( $(date +%s) + 2 ))" "$DATA6/address"
  sleep 1.1  # permissions.addressReload: reload_delta = 1 s
  out=$(scripts/sbc.sh rpc "$NAME6" permissions.addressReload | tr -d '\n\t ')
  echo "permissions.addressReload: $out" >&2
  tcall "IPv6 UDP from ::1 (network now ::2/128: unknown)" "RESULT 403 src:unknown Unknown Source" "" -- \
    "${V6[@]}" --transport udp
  write_addr6 '\:\:0' 127 'src\:\:\:/127'
  touch -d "@$(( $(date +%s) + 4 ))" "$DATA6/address"
  sleep 1.1
  scripts/sbc.sh rpc "$NAME6" permissions.addressReload > /dev/null
  tcall "IPv6 UDP from ::1 (network ::/127 contains it)" "RESULT 200 dst:national OK" "BYE 200" -- \
    "${V6[@]}" --transport udp
fi

for n in "$NAME" "$NAME6"; do
  [ -f "$RUN/$n/log" ] || continue
  if grep -E 'ERROR|CRITICAL|BUG' "$RUN/$n/log" > "$WORK/$n-errors.txt"; then
    # expected: the tls module's errors for the refused rogue certificates
    if grep -v -E 'tls_h_read_f\(\)|tls_err_ret\(\)|tcp_read_req: error reading' "$WORK/$n-errors.txt" > "$WORK/$n-unexpected.txt"; then
      fail "unexpected ERROR lines in the $n log: $(head -3 "$WORK/$n-unexpected.txt")"
    else
      pass "$n log: only the expected tls errors ($(wc -l < "$WORK/$n-errors.txt") lines, the rogue handshakes)"
    fi
  else
    pass "$n log: no ERROR lines"
  fi
done

say "summary: $PASSES passed, $FAILS failed"
[ "$FAILS" = 0 ]
