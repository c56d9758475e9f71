#!/usr/bin/env bash
# Builds the container image from ./Dockerfile without a Docker engine, with
# buildah, and tags it wale-sidecar:test. As root, on Debian.
#
#   bash scripts/image.sh               build (base images are made once, then cached)
#   bash scripts/image.sh podman ARGS   podman on the same private storage (the image test uses it)
#   WALE_IMAGE_NO_CACHE=1 bash scripts/image.sh   build every layer again
#
# The Dockerfile is the one a user builds with `docker build` elsewhere. Its
# two base images cannot be pulled here, so local stand-ins are made under
# the names it uses:
#   - debian:bookworm-slim: mmdebstrap --variant=minbase of bookworm (with
#     updates and security) and the merged-usr hook, trimmed and configured as
#     the official slim image is (no docs, man pages or locales; apt keeps no
#     caches);
#   - oven/bun:<BUN_VERSION>-debian: that, plus Bun from the npm package
#     @oven/bun-linux-x64 at the Dockerfile's BUN_VERSION.
# A fresh machine builds them; later runs on the same machine reuse them
# until Debian has newer versions of their packages (WALE_IMAGE_REBUILD_BASE=1
# makes them again anyway).
#
# Obstacles on these machines, and what is done about them:
#   - the storage driver is set in a private storage.conf
#     (CONTAINERS_STORAGE_CONF): the environment variable is ignored. Overlay
#     is about 3x faster than vfs and uses a fifth of the disk;
#   - runc, not crun, which refuses this kernel's cgroup set-up and rlimits;
#     the default ulimits are capped at this shell's hard limits;
#   - chroot isolation, which always uses the host network;
#   - where HTTPS is re-signed by a proxy, the machine's extra CA certificates
#     (NODE_EXTRA_CA_CERTS, SSL_CERT_FILE, /usr/local/share/ca-certificates)
#     are trusted by the build's `bun install` and `pip install` through
#     a bind-mounted directory, for the build only: nothing of them is committed to
#     the image.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${WALE_IMAGE_STATE:-/var/lib/wale-sidecar-image}"
IMAGE="${WALE_IMAGE:-wale-sidecar:test}"

log() { printf 'image: %s\n' "$*" >&2; }

if [[ $(id -u) -ne 0 ]]; then
  log "run me as root (buildah, podman and mmdebstrap need it here)"
  exit 1
fi

# ------------------------------------------------------------ configuration
mkdir -p "$STATE"
nofile="$(ulimit -Hn)"
nproc="$(ulimit -Hu)"
[[ $nproc == unlimited || $nproc -gt 32768 ]] && nproc=32768
[[ $nofile == unlimited || $nofile -gt 1048576 ]] && nofile=1048576
cat >"$STATE/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$STATE/storage"
runroot = "$STATE/run"
EOF
cat >"$STATE/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
export CONTAINERS_STORAGE_CONF="$STATE/storage.conf" CONTAINERS_CONF="$STATE/containers.conf"
export BUILDAH_ISOLATION=chroot BUILDAH_RUNTIME=runc

if [[ ${1:-} == podman ]]; then
  shift
  exec podman --runtime runc --cgroup-manager cgroupfs "$@"
fi

missing=()
for pkg in buildah podman runc mmdebstrap; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  log "apt-get install ${missing[*]}"
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

started=$SECONDS
exists() { buildah inspect --type image "$1" >/dev/null 2>&1; }

# ------------------------------------------------------------- base images
bun_version="$(sed -n 's/^ARG BUN_VERSION=//p' "$root/Dockerfile")"
debian="docker.io/library/debian:bookworm-slim"
bun="docker.io/oven/bun:${bun_version}-debian"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The cached stand-in is made again once Debian has moved on: when this
# machine's apt knows a newer version of a package in it (a point release,
# a security update), as a fresh pull of the official image would bring.
base_behind() {
  local -A have=()
  local pkg version candidate
  while read -r pkg version; do have[$pkg]=$version; done < <(
    podman run --rm --network host --entrypoint dpkg-query "$debian" -W -f '${Package} ${Version}\n' 2>/dev/null
  )
  while read -r pkg candidate; do
    [[ -n ${have[$pkg]:-} && $candidate != "(none)" ]] || continue
    if dpkg --compare-versions "$candidate" gt "${have[$pkg]}"; then
      log "$debian is behind Debian ($pkg ${have[$pkg]} < $candidate)"
      return 0
    fi
  done < <(apt-cache policy "${!have[@]}" 2>/dev/null | awk '/^[^ ].*:$/ { sub(/:$/, ""); p = $0 } /^  Candidate:/ { print p, $2 }')
  return 1
}

if [[ ${WALE_IMAGE_REBUILD_BASE:-} == 1 ]] || ! exists "$debian" || base_behind; then
  log "making $debian with mmdebstrap"
  # The official slim image's dpkg and apt settings (debuerreotype's "slim").
  mmdebstrap --quiet --variant=minbase --format=tar \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/groff/*' \
    --dpkgopt='path-exclude=/usr/share/lintian/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --aptopt='Acquire::Languages "none"' \
    --aptopt='Dir::Cache::pkgcache ""' \
    --aptopt='Dir::Cache::srcpkgcache ""' \
    --aptopt='DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; }' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/log/apt/* "$1"/var/log/dpkg.log' \
    bookworm "$work/debian.tar" \
    "deb http://deb.debian.org/debian bookworm main" \
    "deb http://deb.debian.org/debian bookworm-updates main" \
    "deb http://deb.debian.org/debian-security bookworm-security main" \
    >"$work/mmdebstrap.log" 2>&1 || { cat "$work/mmdebstrap.log" >&2; exit 1; }
  ctr="$(buildah from scratch)"
  buildah add --quiet "$ctr" "$work/debian.tar" / >/dev/null
  buildah config --cmd bash --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$ctr"
  buildah commit --quiet --rm --format docker "$ctr" "$debian" >/dev/null
  buildah rmi "$bun" >/dev/null 2>&1 || true
fi

if ! exists "$bun"; then
  log "making $bun from the npm package @oven/bun-linux-x64@$bun_version"
  (cd "$work" && npm pack --silent "@oven/bun-linux-x64@$bun_version" >/dev/null)
  tar -xzf "$work"/oven-bun-linux-x64-*.tgz -C "$work" package/bin/bun
  ctr="$(buildah from --pull=never "$debian")"
  mnt="$(buildah mount "$ctr")"
  install -m 0755 "$work/package/bin/bun" "$mnt/usr/local/bin/bun"
  ln -s bun "$mnt/usr/local/bin/bunx"
  buildah umount "$ctr" >/dev/null
  buildah config --cmd /usr/local/bin/bun --workingdir /home/bun/app "$ctr"
  buildah commit --quiet --rm --format docker "$ctr" "$bun" >/dev/null
fi

# ---------------------------------------------- extra CA certificates, if any
# The bundle the build trusts: the system's, plus every certificate this
# machine was told to trust besides. Only mounted when there are such.
extras=()
for f in "${NODE_EXTRA_CA_CERTS:-}" "${SSL_CERT_FILE:-}" /usr/local/share/ca-certificates/*.crt \
  /usr/local/share/ca-certificates/*/*.crt; do
  [[ -n $f && -f $f ]] && extras+=("$f")
done
# They reach the build through a directory mounted on /root (HOME of every
# RUN): buildah leaves an empty file behind for any mount on a path the image
# lacks, and /root exists in both base images, so the image keeps no trace.
# pip reads ~/.config/pip/pip.conf, Bun ~/.bunfig.toml.
mounts=()
if ((${#extras[@]})); then
  log "trusting this machine's extra CA certificates in the build (${#extras[@]} files)"
  home="$work/home"
  mkdir -p "$home/.config/pip"
  cat /etc/ssl/certs/ca-certificates.crt "${extras[@]}" 2>/dev/null >"$home/.build-ca.pem"
  printf '[global]\ncert = /root/.build-ca.pem\n' >"$home/.config/pip/pip.conf"
  printf '[install]\ncafile = "/root/.build-ca.pem"\n' >"$home/.bunfig.toml"
  mounts=(-v "$home:/root")
fi

# ---------------------------------------------------------------- the build
log "building $IMAGE from Dockerfile"
buildah bud --quiet --pull=never --isolation chroot --network host --format docker --layers \
  --runtime runc --ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc" \
  ${WALE_IMAGE_NO_CACHE:+--no-cache} "${mounts[@]}" -t "$IMAGE" -f "$root/Dockerfile" "$root" >/dev/null
size="$(podman image inspect --format '{{.Size}}' "$IMAGE")"
log "ok: $IMAGE, $((size / 1000000)) MB, in $((SECONDS - started)) s"
