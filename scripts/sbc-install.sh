#!/usr/bin/env bash
# Installs what the SBC and its tests need, idempotently: Kamailio 5.6 with the
# modules tollgate.cfg loads, Redis (the store of fleet-wide limits), SIPp, openssl (test certificates), procps
# (pgrep: test-agent finds the trial Kamailio processes), jq and curl
# (the test scripts read JSON answers with them) and the Python
# venv with mmdb-writer (the test GeoIP2 database). A fast no-op when all is
# there; `apt-get update` runs only when a package is missing.
#   scripts/sbc-install.sh [PACKAGE...]   (more Debian packages a bench needs)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

pkgs=(kamailio kamailio-extra-modules kamailio-utils-modules kamailio-json-modules
      kamailio-tls-modules kamailio-geoip2-modules kamailio-redis-modules redis-server sip-tester openssl jq curl procps "$@")
missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  [ "$(id -u)" = 0 ] || die "installing packages needs root"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
# The Debian packages enable services; these tests start their own instances.
for svc in kamailio redis-server; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" >&2 || true
  fi
done
python_env >/dev/null
