#!/usr/bin/env bash
# Installs Prometheus and Alertmanager from Debian (prometheus 2.42,
# prometheus-alertmanager 0.25 on bookworm), idempotently: a fast no-op when
# both are there; `apt-get update` runs only when a package is missing.
# The tests start the binaries themselves (scripts/monitoring.sh) on
# loopback ports of their own; the Debian services are kept from starting
# during the install (a temporary policy-rc.d, only if the machine has
# none) and stopped if they run.
#   scripts/monitoring-install.sh
set -euo pipefail
. "$(dirname "$0")/lib.sh"

pkgs=(prometheus prometheus-alertmanager)
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
  own_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    own_policy=1
  fi
  rc=0
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >&2 || rc=$?
  [ -z "$own_policy" ] || rm -f /usr/sbin/policy-rc.d
  [ "$rc" = 0 ] || die "apt-get install ${missing[*]} failed"
fi
for s in prometheus prometheus-alertmanager; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$s" 2>/dev/null; then
    systemctl stop "$s" >&2 || true
  fi
done
command -v prometheus >/dev/null || die "prometheus is not installed"
command -v prometheus-alertmanager >/dev/null || die "prometheus-alertmanager is not installed"
command -v promtool >/dev/null || die "promtool is not installed"
