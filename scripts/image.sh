#!/usr/bin/env bash
# Builds the container image from the Containerfile and saves it as an OCI archive,
# without a registry: the base is made from Debian packages (debootstrap minbase
# bookworm from this machine's apt mirror), cached, and imported as a local image.
#
#   scripts/image.sh            build (layers and the base are reused) and save
#
# Variables (read by this script only):
#   ADVISERING_IMAGE_CACHE_DIR  where the base tarball is kept (~/.cache/advisering/image)
#   ADVISERING_IMAGE_OUT_DIR    where the archive goes (build/image)
#   ADVISERING_IMAGE_MIRROR     Debian mirror for the base (default: from /etc/apt)
#   ADVISERING_IMAGE_BASE       build on this image instead of making one
#   ADVISERING_IMAGE_SOURCE     the org.opencontainers.image.source label (git remote)
# Prints the archive's path last. See docs/deploying.md "The container image".
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
suite=bookworm
cache="${ADVISERING_IMAGE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/advisering/image}"
out="${ADVISERING_IMAGE_OUT_DIR:-$root/build/image}"
export CONTAINERS_CONF="$root/scripts/containers.conf"
mkdir -p "$cache" "$out"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
step() { echo "== image: $* ($(date +%T))" >&2; }
toml() { sed -n "s/^$1 = \"\\(.*\\)\"\$/\\1/p" pyproject.toml | head -1; }

version=$(toml version)
licenses=$(toml license)
image="localhost/advisering:$version"

# --- 1. the tools, from Debian, when missing ---------------------------------
missing=()
for tool in buildah podman debootstrap umoci skopeo runc; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  step "installing ${missing[*]} (Debian packages)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# --- 2. the base: debootstrap minbase, cached as a tarball, imported ----------
# The first URI of an apt source (one-line or deb822) that serves suite $1.
apt_uri() {
  local files=(/etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources)
  local f
  for f in "${files[@]}"; do
    [ -r "$f" ] || continue
    case "$f" in
      *.sources) awk -v suite="$1" 'BEGIN { RS = ""; FS = "\n" }
        { uri = ""; hit = 0; deb = 0
          for (i = 1; i <= NF; i++) {
            n = split($i, w, /[ \t]+/)
            if (w[1] == "Types:") for (j = 2; j <= n; j++) if (w[j] == "deb") deb = 1
            if (w[1] == "URIs:") uri = w[2]
            if (w[1] == "Suites:") for (j = 2; j <= n; j++) if (w[j] == suite) hit = 1
          }
          if (deb && hit && uri != "") { print uri; exit } }' "$f" ;;
      *) awk -v suite="$1" '$1 == "deb" { sub(/\[[^]]*\] */, "")
          if ($3 == suite) { print $2; exit } }' "$f" ;;
    esac
  done | head -1
}

base_tar="$cache/$suite-minbase.tar.gz"
if [ -n "${ADVISERING_IMAGE_BASE:-}" ]; then
  base="$ADVISERING_IMAGE_BASE"
else
  if [ ! -s "$base_tar" ]; then
    mirror="${ADVISERING_IMAGE_MIRROR:-$(apt_uri "$suite")}"
    mirror="${mirror:-http://deb.debian.org/debian}"
    security=$(apt_uri "$suite-security")
    step "debootstrap --variant=minbase $suite from $mirror"
    work=$(mktemp -d "$cache/rootfs.XXXXXX")
    trap 'as_root rm -rf "$work"' EXIT
    as_root debootstrap --variant=minbase "$suite" "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
      || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }
    # apt in the build sees the point-release, its updates and the security archive.
    {
      echo "deb $mirror $suite main"
      echo "deb $mirror $suite-updates main"
      if [ -n "$security" ]; then echo "deb $security $suite-security main"; fi
    } | as_root tee "$work/rootfs/etc/apt/sources.list" >/dev/null
    as_root sh -c "rm -rf '$work'/rootfs/var/cache/apt/archives/*.deb '$work'/rootfs/var/lib/apt/lists/* '$work'/rootfs/var/log/*.log"
    as_root tar -C "$work/rootfs" --numeric-owner -czf "$base_tar.part" .
    as_root mv "$base_tar.part" "$base_tar"
    as_root rm -rf "$work"
    trap - EXIT
  fi
  # Tagged by the tarball's hash: a new tarball is a new base, an old one is reused.
  base="localhost/advisering-base:$suite-$(sha256sum "$base_tar" | cut -c1-12)"
  if ! podman image exists "$base"; then
    step "importing the base as $base"
    podman import --quiet \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'CMD ["/bin/bash"]' "$base_tar" "$base" >/dev/null
  fi
fi

# --- 3. pip's settings as build secrets (never in a layer) --------------------
secrets=$(mktemp -d)
trap 'rm -rf "$secrets"' EXIT
chmod 700 "$secrets"
# The CA bundle pip uses on this host (a TLS-intercepting proxy's CA lives there).
host_pip=$( (python3 -m pip config list 2>/dev/null || true) | sed -n "s/^[^.]*\\.\\([a-z-]*\\)='\\(.*\\)'\$/\\1=\\2/p")
ca=$(printf '%s\n' "$host_pip" | sed -n 's/^cert=//p' | tail -1)
ca="${ca:-${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}}"
: >"$secrets/pipca"
if [ -r "$ca" ]; then cp "$ca" "$secrets/pipca"; fi
# The host's index settings (files first, then PIP_* variables, the later winning),
# which may carry credentials: hence a secret, not a build argument.
{
  echo "[global]"
  printf '%s\n' "$host_pip" | awk -F= '
    $1 ~ /^(index-url|extra-index-url|trusted-host|timeout|default-timeout|retries|proxy)$/ { v[$1] = substr($0, length($1) + 2) }
    $1 == "find-links" && $0 ~ /=https?:/ { v[$1] = substr($0, length($1) + 2) }
    END { for (k in v) print k " = " v[k] }'
} >"$secrets/pip.conf"
chmod 600 "$secrets"/*

# --- 4. build -------------------------------------------------------------------
# The source label: ADVISERING_IMAGE_SOURCE, else the git remote as a public URL (any
# credentials in it dropped; a local path is no source, and gives an empty label).
source_url="${ADVISERING_IMAGE_SOURCE:-$(git config --get remote.origin.url 2>/dev/null || true)}"
case "$source_url" in
  http://*|https://*) source_url=$(printf '%s' "$source_url" | sed -E 's#^(https?://)[^/@]*@#\1#; s#\.git$##') ;;
  git@*:*) source_url=$(printf '%s' "$source_url" | sed -E 's#^git@([^:]+):#https://\1/#; s#\.git$##') ;;
  *) source_url="" ;;
esac
revision=$(git rev-parse HEAD 2>/dev/null || true)
step "buildah bud $image (base $base)"
buildah bud --isolation chroot --layers \
  --build-arg "BASE=$base" \
  --build-arg "VERSION=$version" \
  --build-arg "LICENSES=$licenses" \
  --build-arg "SOURCE=$source_url" \
  --build-arg "REVISION=$revision" \
  --label "org.opencontainers.image.version=$version" \
  --label "org.opencontainers.image.licenses=$licenses" \
  --label "org.opencontainers.image.source=$source_url" \
  --label "org.opencontainers.image.revision=$revision" \
  --secret "id=pipca,src=$secrets/pipca" \
  --secret "id=pipconf,src=$secrets/pip.conf" \
  --iidfile "$out/image.iid" \
  --tag "$image" \
  --file Containerfile .

# --- 5. the OCI archive (rewritten only when the image changed) -----------------
archive="$out/advisering-$version.oci.tar"
iid=$(cat "$out/image.iid")
if [ ! -s "$archive" ] || [ "$(cat "$out/archive.iid" 2>/dev/null)" != "$iid" ]; then
  step "podman save --format oci-archive"
  rm -f "$archive"
  podman save --quiet --format oci-archive -o "$archive.part" "$image"
  mv "$archive.part" "$archive"
  echo "$iid" >"$out/archive.iid"
fi
# What tests/image reads: the image in local storage and its archive.
printf 'IMAGE=%s\nIMAGE_ID=%s\nARCHIVE=%s\n' "$image" "$iid" "$archive" >"$out/image.env"
step "done: $(du -h "$archive" | cut -f1) archive, image $image"
echo "$archive"
