# A base backup in non-exclusive mode, in WAL-E's own store layout.
#
# src/backups/jobs.ts runs this, after src/workers/_prelude.py, with the
# interpreter that runs WAL-E:
#
#   python -c <prelude + this file> [WALE_FLAGS] backup-push [flags] <PGDATA>
#
# WAL-E 1.1's backup-push calls pg_start_backup(label) in one psql and
# pg_stop_backup() in another: exclusive mode, which PostgreSQL 15 removed,
# and which leaves backup_label in the live PGDATA when anything dies in
# between. Here one psql session, a child of this process fed on a pipe,
# starts the backup non-exclusively and stops it: if this process dies, the
# pipe closes, psql exits, and PostgreSQL ends the backup by itself; if
# psql dies, this process stops at once. Between the two calls, the data
# files go through the very code backup-push uses (tar_partition.partition,
# PartitionUploader, TarUploadPool, uri_put_file), so the store holds what
# backup-push would write:
#
#   basebackups_005/base_<segment>_<offset>/extended_version.txt
#   basebackups_005/base_<segment>_<offset>/tar_partitions/part_<n>.tar.lzo
#   basebackups_005/base_<segment>_<offset>_backup_stop_sentinel.json
#
# plus one more partition, the next part_<n> (stock backup-fetch takes only
# that name, storage.VOLUME_REGEXP), holding what the stop call returned
# (backup_label, and tablespace_map when there are tablespaces) and the
# configuration files WAL-E leaves out (tar_partition.PG_CONF):
# postgresql.conf, pg_hba.conf, pg_ident.conf. Without backup_label a
# restored cluster starts crash recovery from the wrong checkpoint and is
# silently corrupt, so the sentinel, which alone makes a backup listed and
# restorable, is written only once that partition is in the store, after
# the stop returned and waited for its WAL to be archived.
#
# Lines on stdout (src/workers/protocol.ts): "started <backup> <lsn>",
# "uploaded <partitions> <bytes>", "stopped <lsn>", "done <backup>", or
# "refused <reason>" (exit 4) before anything is started or written.
import datetime
import json
import subprocess
import tarfile
import tempfile
from io import BytesIO

# (src/workers/_prelude.py comes first: os, sys, threading, cmd, say, wale_setup, exit_with_parent.)
from wal_e import storage, tar_partition
from wal_e.worker import PartitionUploader, TarUploadPool, uri_put_file

# WAL-E writes these; a backup in non-exclusive mode must take the ones the
# stop call returns, never a stale file of that name in PGDATA.
LABEL_FILES = ("backup_label", "tablespace_map")
# tar_partition.PG_CONF leaves these out; restore brings them back.
CONF_FILES = ("postgresql.conf", "pg_hba.conf", "pg_ident.conf")
# A field separator psql will not find in any value we ask for.
SEP = "\x1f"
END = "__wale_sidecar_end__"


class Refused(Exception):
    """Nothing was started or written: say why, in one line."""


class SessionLost(Exception):
    """The database session ended (an error, a dropped connection)."""


class Session:
    """
    One psql, held on a pipe: WAL-E's own client, which finds the server
    through PGHOST, PGPORT, PGUSER, PGPASSWORD (and PGDATABASE, else
    `postgres`, as WAL-E's psql_csv_run).
    """

    def __init__(self):
        argv = [cmd.PSQL_BIN, "-X", "-A", "-t", "-q", "--no-password", "-v", "ON_ERROR_STOP=1", "-F", SEP]
        if not os.environ.get("PGDATABASE"):
            argv += ["-d", "postgres"]
        # Named, so that an operator (and the tests) can find it in pg_stat_activity.
        env = dict(os.environ, PGAPPNAME="wale-sidecar backup")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self.errors = []
        self.closing = False
        self._stderr = threading.Thread(target=self._read_errors, daemon=True)
        self._stderr.start()

    def _read_errors(self):
        for line in self.proc.stderr:
            text = line.decode("utf-8", "replace").strip()
            if text:
                self.errors.append(text)
                sys.stderr.write("psql: " + text + "\n")

    def watch(self):
        """From now on, psql gone means the backup is gone: stop at once."""

        def wait():
            code = self.proc.wait()
            if not self.closing:
                say("failed", "the database session ended during the backup (psql exit %d): %s" % (code, self.error()))
                sys.stderr.flush()
                os._exit(1)

        threading.Thread(target=wait, daemon=True).start()

    def error(self):
        self._stderr.join(timeout=2)  # psql is gone: its last words are on their way
        # psql prints "ERROR:  ..." or "psql: error: ..." (then DETAIL, HINT;
        # NOTICEs along the way): the first line of those is the reason.
        lines = [line for line in self.errors if not line.startswith(("DETAIL", "HINT", "CONTEXT", "NOTICE", "WARNING"))]
        return lines[0] if lines else "no message"

    def rows(self, sql):
        """Runs one statement; its rows as lists of strings."""
        try:
            self.proc.stdin.write(("%s;\n\\echo %s\n" % (sql, END)).encode("utf-8"))
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass
        rows = []
        for line in self.proc.stdout:
            text = line.decode("utf-8").rstrip("\n")
            if text == END:
                return rows
            rows.append(text.split(SEP))
        self.proc.wait()
        raise SessionLost(self.error())

    def row(self, sql):
        rows = self.rows(sql)
        if len(rows) != 1:
            raise SessionLost("expected one row from %r, got %d" % (sql, len(rows)))
        return rows[0]

    def close(self):
        self.closing = True
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        self.proc.wait()


def check_readable(pgdata):
    """Every directory and file WAL-E will read, before a backup starts (nothing is written)."""
    if not os.path.isdir(pgdata):
        raise Refused("PGDATA %s is not a directory" % pgdata)

    def fail(error):
        raise Refused("cannot read PGDATA: %s" % error)

    for root, dirnames, filenames in os.walk(pgdata, onerror=fail, followlinks=True):
        for dirname in (".wal-e", "pgsql_tmp", "pg_stat_tmp", "pg_wal", "pg_xlog", "lost+found"):
            if dirname in dirnames:
                dirnames.remove(dirname)
        for filename in filenames:
            path = os.path.join(root, filename)
            if not os.access(path, os.R_OK) and os.path.exists(path):
                raise Refused("cannot read PGDATA: permission denied: %s" % path)


def start_backup(db, fast):
    """Refuses what cannot be backed up, then starts: (server version text, start lsn, segment, offset)."""
    num, standby, archive_mode, user = db.row(
        "SELECT current_setting('server_version_num'), pg_is_in_recovery(), "
        "current_setting('archive_mode'), current_user"
    )
    num = int(num)
    if num < 100000:
        raise Refused("PostgreSQL %d.%d is not supported (10 or later)" % (num // 10000, num // 100 % 100))
    if standby == "t":
        # Allowed by PostgreSQL, but WAL-E's names and its stop segment are a
        # primary's: take base backups on the primary.
        raise Refused("the server is a standby (in recovery): take base backups on the primary")
    if archive_mode == "off":
        raise Refused("archive_mode is off: the backup's WAL would never reach the archive")
    # PostgreSQL 15 renamed pg_start_backup/pg_stop_backup and dropped exclusive mode.
    start, stop = ("pg_backup_start", "pg_backup_stop") if num >= 150000 else ("pg_start_backup", "pg_stop_backup")
    for function in (start, stop):
        (allowed,) = db.row("SELECT has_function_privilege(%s, 'execute')" % quote(function_signature(function)))
        if allowed != "t":
            raise Refused(
                "role %s may not start a backup: it lacks EXECUTE on %s (GRANT EXECUTE ON FUNCTION %s TO %s)"
                % (user, function, function_signature(function), user)
            )
    # WAL-E's statement timeout (psql_csv_run's PGOPTIONS); and, from 14 on,
    # no idle_session_timeout may end this session while the files upload.
    db.rows("SET statement_timeout = 0")
    if num >= 140000:
        db.rows("SET idle_session_timeout = 0")
    (version,) = db.row("SELECT version()")
    label = "freeze_start_" + datetime.datetime.now(datetime.timezone.utc).isoformat()
    call = (
        "pg_backup_start(%s, %s)" % (quote(label), fast)
        if num >= 150000
        else "pg_start_backup(%s, %s, false)" % (quote(label), fast)
    )
    lsn, segment, offset = db.row(
        "SELECT lsn, file_name, lpad(file_offset::text, 8, '0') "
        "FROM (SELECT %s AS lsn) s, pg_walfile_name_offset(s.lsn)" % call
    )
    return num, version, lsn, segment, offset


def stop_backup(db, num):
    """Stops the backup, waiting for its WAL to be archived: (lsn, segment, offset, backup_label, tablespace_map)."""
    call = "pg_backup_stop(wait_for_archive => true)" if num >= 150000 else "pg_stop_backup(false, true)"
    lsn, segment, offset, label, spcmap = db.row(
        "SELECT s.lsn, w.file_name, lpad(w.file_offset::text, 8, '0'), "
        "encode(convert_to(s.labelfile, 'UTF8'), 'hex'), encode(convert_to(coalesce(s.spcmapfile, ''), 'UTF8'), 'hex') "
        "FROM %s s, pg_walfile_name_offset(s.lsn) w" % call
    )
    return lsn, segment, offset, bytes.fromhex(label), bytes.fromhex(spcmap)


def function_signature(name):
    return {
        "pg_backup_start": "pg_backup_start(text, boolean)",
        "pg_backup_stop": "pg_backup_stop(boolean)",
        "pg_start_backup": "pg_start_backup(text, boolean, boolean)",
        "pg_stop_backup": "pg_stop_backup(boolean, boolean)",
    }[name]


def quote(text):
    return "'" + text.replace("'", "''") + "'"


def without_label_files(parts):
    """The data partitions, less any backup_label or tablespace_map lying in PGDATA's top level."""
    for tpart in parts:
        tpart[:] = [et for et in tpart if et.tarinfo.name not in LABEL_FILES]
        yield tpart


def label_partition(number, pgdata, scratch, label, spcmap):
    """
    The extra partition: backup_label and tablespace_map as the stop call
    returned them, then the configuration files as they are in PGDATA (a
    symbolic link is followed; a file that is not there is left out).
    """
    if not label.startswith(b"START WAL LOCATION:"):
        raise RuntimeError("the stop call returned no backup_label: the backup is unusable")
    members = []
    bogus = tarfile.TarFile(os.devnull, "w", dereference=True)
    try:
        for name, content in (("backup_label", label), ("tablespace_map", spcmap)):
            if name == "tablespace_map" and not content:
                continue
            path = os.path.join(scratch, name)
            with open(path, "wb") as f:
                f.write(content)
            os.chmod(path, 0o600)
            members.append(tar_partition.ExtendedTarInfo(submitted_path=path, tarinfo=bogus.gettarinfo(path, arcname=name)))
        for name in CONF_FILES:
            path = os.path.join(pgdata, name)
            if os.path.isfile(path):
                members.append(tar_partition.ExtendedTarInfo(submitted_path=path, tarinfo=bogus.gettarinfo(path, arcname=name)))
    finally:
        bogus.close()
    return tar_partition.TarPartition(number, members)


def main(argv):
    if "backup-push" not in argv or len(argv) < 2:
        print("usage: [WAL-E flags] backup-push [backup-push flags] <PGDATA>", file=sys.stderr)
        return 2
    try:
        # Not PSQL_BIN: WAL-E's check of it is a connection, which Session
        # makes below, with a clearer message when it fails.
        args, backup_cxt = wale_setup(argv, [cmd.LZOP_BIN, cmd.PV_BIN])
    except SetupFailed:
        return 3
    exit_with_parent()  # and psql, its stdin closed, with it: PostgreSQL then ends the backup
    pgdata = os.path.abspath(args.PG_CLUSTER_DIRECTORY)
    cmd.monkeypatch_tarfile_copyfileobj()  # as backup-push does
    db = None
    try:
        if args.while_offline:
            raise Refused("--while-offline is not supported: the sidecar backs up a running server")
        check_readable(pgdata)
        db = Session()
        try:
            num, version, lsn, segment, offset = start_backup(db, fast="true")
        except SessionLost as error:
            # Nothing started: psql could not connect, or a check failed.
            raise Refused("cannot start the backup: %s" % error) from error
        db.watch()
        name = "base_%s_%s" % (segment, offset)
        say("started", name, lsn)

        layout = backup_cxt.layout
        prefix = "%s/basebackups_%s/%s" % (layout.prefix.rstrip("/"), storage.CURRENT_VERSION, name)
        # As operator/backup.py's _upload_pg_cluster_dir: the version first, then the partitions.
        uri_put_file(backup_cxt.creds, prefix + "/extended_version.txt", BytesIO(version.encode("utf8")),
                     content_type="text/plain")
        rate_limit = None if args.rate_limit is None else int(args.rate_limit / args.pool_size)
        uploader = PartitionUploader(backup_cxt.creds, prefix, rate_limit, backup_cxt.gpg_key_id)
        pool = TarUploadPool(uploader, args.pool_size)
        spec, parts = tar_partition.partition(pgdata)
        count, total = 0, 0
        for tpart in without_label_files(parts):
            count = max(count, tpart.name + 1)
            total += tpart.total_member_size
            pool.put(tpart)
        pool.join()
        say("uploaded", count, total)

        stop_lsn, stop_segment, stop_offset, label, spcmap = stop_backup(db, num)
        db.close()
        say("stopped", stop_lsn)

        with tempfile.TemporaryDirectory(prefix="wale-sidecar-backup-") as scratch:
            extra = label_partition(count, pgdata, scratch, label, spcmap)
            uploader(extra)  # raises unless the whole partition is in the store
            total += extra.total_member_size

        # operator/backup.py's sentinel, key for key: what backup-list and backup-fetch read.
        sentinel = json.dumps(
            {
                "wal_segment_backup_stop": stop_segment,
                "wal_segment_offset_backup_stop": stop_offset,
                "expanded_size_bytes": total,
                "spec": spec,
            }
        )
        uri_put_file(backup_cxt.creds, prefix + "_backup_stop_sentinel.json", BytesIO(sentinel.encode("utf8")),
                     content_type="application/json")
        say("done", name)
        return 0
    except Refused as refusal:
        say("refused", str(refusal))
        return 4
    except Exception as error:
        # No sentinel: the backup is never listed, never restored.
        say("failed", "%s: %s" % (type(error).__name__, error))
        raise
    finally:
        if db is not None and not db.closing:
            db.close()


sys.exit(main(sys.argv[1:]))
