#!/usr/bin/env bash
# Tollgate's container images, built from Debian's archive with Debian's own
# tools (mmdebstrap, podman): no base image is pulled from any registry.
#
#   scripts/images.sh build [NAME...]    build operator, sbc, cli and fleet-store (default: all)
#   scripts/images.sh verify [NAME...]   build them again from nothing (a fresh
#                                        download, fresh root file systems, no layer
#                                        cache) under the tag `verify` and compare
#                                        the image IDs with the ones `build` made
#   scripts/images.sh list               name, image ID, size
#   scripts/images.sh podman ARGS...     podman with the project's settings
#
# The images (docs/deploy.md "Images"):
#   operator  tollgate-operator; nothing else but the C library
#   sbc       Kamailio (the binary, the modules sbc/kamailio/tollgate.cfg loads,
#             their libraries), tollgate.cfg at /etc/tollgate/cfg, tollgate-agent
#   cli       the tollgate CLI and busybox (a shell for CI jobs)
#   fleet-store  Debian's redis-server: the store of fleet-wide limits
#             (examples/sbc/fleet-store.yaml)
# and beside them the kubectl plugin: build/kubectl-tollgate/ (one archive
# holding the binary, and its krew manifest).
# Each runs as uid 65532 (user nonroot), holds only the files it needs (the
# shared libraries are found as the dynamic loader finds them), the copyright
# files and dpkg status entries of the Debian packages they come from, and its
# SBOM (SPDX 2.3: Debian packages and Rust crates) at
# /usr/share/tollgate/sbom.spdx.json, also written to build/images/NAME.spdx.json.
# Same inputs, same image ID: every file's time is SOURCE_DATE_EPOCH, the
# binaries are built with the checkout's path remapped, podman builds with
# --timestamp.
#
# Settings: TOLLGATE_IMAGE_PREFIX (default tollgate/), TOLLGATE_IMAGE_TAG (default
# the workspace version), SOURCE_DATE_EPOCH (default the commit time of HEAD),
# TOLLGATE_DEBIAN_MIRROR (default http://deb.debian.org), TOLLGATE_IMAGE_REFRESH=1
# (download the Debian packages again; by default a download is reused for a day),
# TOLLGATE_PLUGIN_URL (where the plugin's archive is published, for its krew manifest).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

NAMES=(operator sbc cli fleet-store)
PREFIX=${TOLLGATE_IMAGE_PREFIX:-tollgate/}
VERSION=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
TAG=${TOLLGATE_IMAGE_TAG:-$VERSION}
EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
export SOURCE_DATE_EPOCH=$EPOCH
MIRROR=${TOLLGATE_DEBIAN_MIRROR:-http://deb.debian.org}
SUITE=bookworm
OUT=$ROOT/build/images
CACHE=${TOLLGATE_CACHE:-$ROOT/.tollgate-cache}/images
BINS=$CARGO_TARGET_DIR/images/release
# every Debian package any image takes files from (each image takes only what it needs)
DEBS=(libc6 libgcc-s1 busybox redis-server kamailio kamailio-extra-modules kamailio-utils-modules
      kamailio-json-modules kamailio-tls-modules kamailio-geoip2-modules kamailio-redis-modules)

usage() { sed -n '2,35p' "$0" >&2; exit 2; }

# --- tools ----------------------------------------------------------------------
ensure_tools() {
  local p missing=()
  for p in podman runc mmdebstrap; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "installing ${missing[*]} needs root"
    say "installing ${missing[*]} (Debian)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  fi
}
pm() { podman_cmd "$@"; }

# --- the binaries ---------------------------------------------------------------
build_binaries() {
  say "release binaries for the images (target dir $CARGO_TARGET_DIR/images)"
  # no debug info, the checkout's and cargo's paths remapped: the same source
  # gives the same bytes wherever it is checked out
  CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=debuginfo \
    RUSTFLAGS="--remap-path-prefix=$ROOT=/tollgate --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo" \
    cargo build --quiet --locked --release --target-dir "$CARGO_TARGET_DIR/images" \
    -p tollgate-operator -p tollgate-agent -p tollgate-cli -p kubectl-tollgate >&2
}

# plugin: the kubectl plugin as one reproducible archive
# (build/kubectl-tollgate/kubectl-tollgate-linux-amd64.tar.gz: the binary
# and a README line) and its krew manifest (tollgate.yaml) naming the
# archive's sha256; TOLLGATE_PLUGIN_URL is where you publish the archive
plugin() {
  local out=$ROOT/build/kubectl-tollgate work
  work=$(mktemp -d)
  mkdir -p "$out"
  cp "$BINS/kubectl-tollgate" "$work/kubectl-tollgate"
  printf 'kubectl tollgate %s: copy kubectl-tollgate onto your PATH, then `kubectl tollgate --help`.\n' "$VERSION" > "$work/README"
  local tgz=$out/kubectl-tollgate-linux-amd64.tar.gz
  tar -C "$work" --sort=name --mtime="@$EPOCH" --owner=0 --group=0 --numeric-owner -cf - kubectl-tollgate README |
    gzip -n -9 > "$tgz"
  local sum url=${TOLLGATE_PLUGIN_URL:-https://downloads.example.net/tollgate/$VERSION}
  sum=$(sha256sum "$tgz" | cut -d' ' -f1)
  {
    echo "apiVersion: krew.googlecontainertools.github.com/v1alpha2"
    echo "kind: Plugin"
    echo "metadata:"
    echo "  name: tollgate"
    echo "spec:"
    echo "  version: v$VERSION"
    echo "  homepage: https://example.invalid/tollgate"
    echo "  shortDescription: \"Tollgate's TollPolicies: rollout per SBC, steer, release, explain\""
    echo "  description: |"
    echo "    Status of a TollPolicy per SBC (revision, hash, consistent, last failure),"
    echo "    its revisions and the semantic diff between two, promote / abort / pause /"
    echo "    resume a rollout, release an emergency response, and explain a call"
    echo "    against the revision in force, read from the cluster."
    echo "  platforms:"
    echo "    - selector:"
    echo "        matchLabels:"
    echo "          os: linux"
    echo "          arch: amd64"
    echo "      uri: $url/kubectl-tollgate-linux-amd64.tar.gz"
    echo "      sha256: $sum"
    echo "      bin: kubectl-tollgate"
  } > "$out/tollgate.yaml"
  rm -rf "$work"
  echo "kubectl-tollgate: $tgz ($(stat -c %s "$tgz") bytes, sha256 ${sum:0:16}...), krew manifest $out/tollgate.yaml"
}

# crates PACKAGE...: "name version" of every crate compiled into them
crates() {
  local p
  for p in "$@"; do
    cargo tree --locked -p "$p" -e normal --prefix none --format '{p}' 2>/dev/null
  done | sed -E 's/^([^ ]+) v([^ ]+).*/\1 \2/' | sort -u
}

# --- Debian's packages, extracted ---------------------------------------------------
# staging DIR: the packages of DEBS and their dependencies extracted into DIR/root
# by mmdebstrap (nothing installed, no maintainer script run), DIR/manifest their
# control fields and files
staging() {
  local dir=$1
  rm -rf "$dir"
  mkdir -p "$dir"
  local inc; inc=$(IFS=,; echo "${DEBS[*]}")
  say "Debian $SUITE packages for the images: mmdebstrap (extract) of ${#DEBS[@]} packages and their dependencies"
  mmdebstrap --quiet --variant=extract --format=directory --include="$inc" --skip=output/dev \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --extract-hook="\"$ROOT/scripts/images.sh\" manifest \"\$1\" \"$dir/manifest\"" \
    "$SUITE" "$dir/root" \
    "deb $MIRROR/debian $SUITE main" "deb $MIRROR/debian $SUITE-updates main" \
    "deb $MIRROR/debian-security $SUITE-security main" >&2
  [ -s "$dir/manifest" ] || die "mmdebstrap wrote no manifest"
}

# manifest ROOTFS FILE (mmdebstrap's extract hook): each downloaded package's
# control fields (P/C lines) and files (F lines)
cmd_manifest() {
  local root=$1 out=$2 deb f
  : > "$out.new"
  for deb in "$root"/var/cache/apt/archives/*.deb; do
    {
      printf 'P\t%s\n' "$(basename "$deb")"
      for f in Package Version Architecture Source Maintainer Homepage; do
        v=$(dpkg-deb -f "$deb" "$f")
        [ -n "$v" ] && printf 'C\t%s: %s\n' "$f" "$v"
      done
      dpkg-deb --fsys-tarfile "$deb" | tar -t | sed 's/^/F\t/'
    } >> "$out.new"
  done
  mv "$out.new" "$out"
}

fresh_staging() { # DIR: reused when younger than a day, unless TOLLGATE_IMAGE_REFRESH=1
  local dir=$1 key
  key=$(printf '%s\n' "$SUITE" "$MIRROR" "${DEBS[@]}" | sha256sum | cut -c1-12)
  if [ "${TOLLGATE_IMAGE_REFRESH:-0}" != 1 ] && [ -s "$dir/manifest" ] && [ "$(cat "$dir/key" 2>/dev/null)" = "$key" ] &&
     [ -n "$(find "$dir/manifest" -mmin -1440)" ]; then
    return 0
  fi
  staging "$dir"
  echo "$key" > "$dir/key"
}

# --- one image -------------------------------------------------------------------
# image NAME STAGING TAG: the root file system, then podman build
image() {
  local name=$1 stage=$2 tag=$3 work args=() cmd=() pkgs=()
  work=$(mktemp -d)
  case $name in
    operator)
      pkgs=(tollgate-operator)
      args=(--add "$BINS/tollgate-operator:/usr/bin/tollgate-operator:0755"
            --dir /var/run/tollgate/agent --dir /var/run/tollgate/webhook)
      cmd=('ENTRYPOINT ["/usr/bin/tollgate-operator"]') ;;
    sbc)
      pkgs=(tollgate-agent)
      args=(--elf /usr/sbin/kamailio
            --add "$BINS/tollgate-agent:/usr/bin/tollgate-agent:0755"
            --add "$ROOT/sbc/kamailio/tollgate.cfg:/etc/tollgate/cfg/tollgate.cfg:0644"
            # Kamailio's runtime dir: it must exist (Kamailio stops when it
            # cannot create it) and nothing is written there (jsonrpcs over
            # HTTP only, no FIFO, no pid file in the foreground)
            --dir /var/run/kamailio
            --dir /run/tollgate/data --dir /var/lib/tollgate-agent --dir /var/run/tollgate/agent)
      local m
      # every module the configuration can load, whatever its -A switches
      for m in $(sed -n 's/^loadmodule "\(.*\)"/\1/p' sbc/kamailio/tollgate.cfg | sort -u); do
        args+=(--elf "/usr/lib/x86_64-linux-gnu/kamailio/modules/$m")
      done
      cmd=('CMD ["kamailio", "-f", "/etc/tollgate/cfg/tollgate.cfg", "-DD", "-E", "-m", "256", "-M", "16", "-x", "tlsf", "-X", "tlsf"]') ;;
    cli)
      pkgs=(tollgate-cli)
      args=(--add "$BINS/tollgate:/usr/bin/tollgate:0755" --busybox)
      cmd=('ENV PATH=/usr/bin:/bin' 'CMD ["tollgate", "--help"]') ;;
    fleet-store)
      args=(--elf /usr/bin/redis-server --dir /data --dir /etc/tollgate-store)
      cmd=('CMD ["redis-server", "--port", "6379", "--save", "", "--appendonly", "no", "--dir", "/data"]') ;;
    *) die "no image named $name (operator, sbc, cli, fleet-store)" ;;
  esac
  if [ ${#pkgs[@]} -gt 0 ]; then crates "${pkgs[@]}" > "$work/crates"; else : > "$work/crates"; fi
  python3 "$ROOT/scripts/image-rootfs.py" --staging "$stage/root" --manifest "$stage/manifest" \
    --name "$name" --version "$TAG" --epoch "$EPOCH" --out "$work/rootfs.tar" \
    --sbom "$work/sbom.spdx.json" --crates "$work/crates" "${args[@]}" >&2
  local rev; rev=$(git rev-parse HEAD 2>/dev/null || echo unknown)
  git diff --quiet HEAD 2>/dev/null || rev=$rev-dirty
  {
    echo "FROM scratch"
    echo "ADD rootfs.tar /"
    echo "USER 65532:65532"
    echo "WORKDIR /"
    printf '%s\n' "${cmd[@]}"
    echo "LABEL org.opencontainers.image.title=\"tollgate-$name\" \\"
    echo "      org.opencontainers.image.version=\"$TAG\" \\"
    echo "      org.opencontainers.image.revision=\"$rev\" \\"
    echo "      org.opencontainers.image.licenses=\"Apache-2.0\" \\"
    echo "      org.opencontainers.image.created=\"$(date -u -d "@$EPOCH" +%Y-%m-%dT%H:%M:%SZ)\" \\"
    echo "      dev.tollgate.sbom=\"/usr/share/tollgate/sbom.spdx.json\""
  } > "$work/Containerfile"
  pm build --quiet --no-cache --timestamp "$EPOCH" --format oci -t "$PREFIX$name:$tag" -f "$work/Containerfile" "$work" >/dev/null
  mkdir -p "$OUT"
  cp "$work/sbom.spdx.json" "$OUT/$name.spdx.json"
  rm -rf "$work"
}

image_id() { pm image inspect --format '{{.Id}}' "$PREFIX$1:$2" 2>/dev/null; }
image_size() { pm image inspect --format '{{.Size}}' "$PREFIX$1:$2" 2>/dev/null; }

cmd_build() {
  local names=("$@") n t0
  [ ${#names[@]} -gt 0 ] || names=("${NAMES[@]}")
  ensure_tools
  t0=$(date +%s)
  build_binaries
  fresh_staging "$CACHE/staging"
  for n in "${names[@]}"; do
    image "$n" "$CACHE/staging" "$TAG"
    image_id "$n" "$TAG" > "$OUT/$n.id"
    printf '%s%s:%s  %s  %s MB\n' "$PREFIX" "$n" "$TAG" "$(cut -c1-19 "$OUT/$n.id")" \
      "$(awk -v s="$(image_size "$n" "$TAG")" 'BEGIN { printf "%.1f", s / 1e6 }')"
  done
  plugin
  say "built ${names[*]} in $(( $(date +%s) - t0 )) s (SOURCE_DATE_EPOCH $EPOCH)"
}

cmd_verify() {
  local names=("$@") n fails=0 dir
  [ ${#names[@]} -gt 0 ] || names=("${NAMES[@]}")
  ensure_tools
  build_binaries
  dir=$(mktemp -d)
  staging "$dir"
  for n in "${names[@]}"; do
    [ -s "$OUT/$n.id" ] || die "no build of $n to compare with: run scripts/images.sh build first"
    image "$n" "$dir" verify
    local a b
    a=$(cat "$OUT/$n.id"); b=$(image_id "$n" verify)
    if [ "$a" = "$b" ]; then
      echo "  ok   $PREFIX$n: rebuilt from nothing, same image ID ${a:0:19}"
    else
      echo "  FAIL $PREFIX$n: rebuilt from nothing, image ID ${b:0:19} != ${a:0:19}"
      fails=$((fails + 1))
    fi
    pm rmi "$PREFIX$n:verify" >/dev/null 2>&1 || true
  done
  rm -rf "$dir"
  [ "$fails" = 0 ]
}

cmd_list() {
  local n
  for n in "${NAMES[@]}"; do
    printf '%s%s:%s  %s  %s bytes\n' "$PREFIX" "$n" "$TAG" "$(image_id "$n" "$TAG" || echo '-')" "$(image_size "$n" "$TAG" || echo '-')"
  done
}

[ $# -ge 1 ] || usage
c=$1; shift
case $c in
  build) cmd_build "$@" ;;
  verify) cmd_verify "$@" ;;
  list) cmd_list ;;
  manifest) cmd_manifest "$@" ;;
  podman) pm "$@" ;;
  *) usage ;;
esac
