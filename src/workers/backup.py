# A base backup in non-exclusive mode, in WAL-E's own store layout.
#
# src/archive/wale-archive.ts runs this, after src/workers/_prelude.py, with the
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
# the stop returned and waited for its WAL to be archived, and once the
# stop segment has been read back from this store. On a file:// store the
# objects are fsynced before the sentinel, and the sentinel after it.
#
# Lines on stdout (src/workers/protocol.ts): "started <backup> <lsn>",
# "uploaded <partitions> <bytes>", "stopped <lsn>", "done <backup>", or
# "refused <reason>" (exit 4) before anything is started or written.
import datetime
import json
import signal
import subprocess
import tarfile
import tempfile
from io import BytesIO

# (src/workers/_prelude.py comes first: os, sys, threading, cmd, say, wale_setup, exit_with_parent.)
from wal_e import storage, tar_partition
from wal_e.blobstore import get_blobstore
from wal_e.worker import PartitionUploader, TarUploadPool, uri_put_file

# WAL-E writes these; a backup in non-exclusive mode must take the ones the
# stop call returns, never a stale file of that name in PGDATA.
LABEL_FILES = ("backup_label", "tablespace_map")
# tar_partition.PG_CONF leaves these out; restore brings them back.
CONF_FILES = ("postgresql.conf", "pg_hba.conf", "pg_ident.conf")
# What a backup session does differently by PostgreSQL release, newest
# first: a server takes the first row at or below its server_version_num.
#   start, stop: the functions (signature, call); 15 renamed them and
#     dropped exclusive mode.
#   unlimited: settings set to 0 for this session, so that nothing ends it
#     while the files upload or the stop waits for its WAL: WAL-E's own
#     statement_timeout (psql_csv_run's PGOPTIONS), idle_session_timeout
#     from 14, transaction_timeout from 17.
_OLD_CALLS = {
    "start": ("pg_start_backup(text, boolean, boolean)", "pg_start_backup(%s, %s, false)"),
    "stop": ("pg_stop_backup(boolean, boolean)", "pg_stop_backup(false, true)"),
}
_NEW_CALLS = {
    "start": ("pg_backup_start(text, boolean)", "pg_backup_start(%s, %s)"),
    "stop": ("pg_backup_stop(boolean)", "pg_backup_stop(wait_for_archive => true)"),
}
RELEASES = (
    (170000, dict(_NEW_CALLS, unlimited=("statement_timeout", "idle_session_timeout", "transaction_timeout"))),
    (150000, dict(_NEW_CALLS, unlimited=("statement_timeout", "idle_session_timeout"))),
    (140000, dict(_OLD_CALLS, unlimited=("statement_timeout", "idle_session_timeout"))),
    (100000, dict(_OLD_CALLS, unlimited=("statement_timeout",))),
)


def release(num):
    """The row of RELEASES for server_version_num `num`; None before 10."""
    return next((row for since, row in RELEASES if num >= since), None)


# libpq's defaults wait for ever: for the connection, and on a peer that
# vanished without a word (a dead host, a dropped NAT entry). An explicit
# PGCONNECT_TIMEOUT wins.
CONNECT_TIMEOUT = "10"
KEEPALIVES = "keepalives=1 keepalives_idle=30 keepalives_interval=10 keepalives_count=3"

# Set by SIGTERM: the session's end is then ours, not a failure to report.
TERMINATING = threading.Event()

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
    `postgres`, as WAL-E's psql_csv_run), with a connect timeout and TCP
    keepalives (see conninfo).
    """

    def __init__(self):
        argv = [cmd.PSQL_BIN, "-X", "-A", "-t", "-q", "--no-password", "-v", "ON_ERROR_STOP=1", "-F", SEP]
        argv += ["-d", conninfo(os.environ)]
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
            if not self.closing and not TERMINATING.is_set():
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


def conninfo(environ):
    """
    psql's -d: the database of PGDATABASE (else `postgres`), a connect
    timeout and TCP keepalives. libpq takes host, port, user and password
    from the environment as before; PGDATABASE that is itself a conninfo
    string or URI is left to libpq as it is.
    """
    database = environ.get("PGDATABASE") or "postgres"
    if "=" in database or database.startswith(("postgres://", "postgresql://")):
        return database
    words = ["dbname=" + quote_conninfo(database), KEEPALIVES]
    if not environ.get("PGCONNECT_TIMEOUT"):
        words.append("connect_timeout=" + CONNECT_TIMEOUT)
    return " ".join(words)


def quote_conninfo(value):
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


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
    """Refuses what cannot be backed up, then starts: (its RELEASES row, server version text, start lsn, segment, offset)."""
    num, standby, archive_mode, user = db.row(
        "SELECT current_setting('server_version_num'), pg_is_in_recovery(), "
        "current_setting('archive_mode'), current_user"
    )
    num = int(num)
    calls = release(num)
    if calls is None:
        raise Refused("PostgreSQL %d.%d is not supported (10 or later)" % (num // 10000, num // 100 % 100))
    if standby == "t":
        # Allowed by PostgreSQL, but WAL-E's names and its stop segment are a
        # primary's: take base backups on the primary.
        raise Refused("the server is a standby (in recovery): take base backups on the primary")
    if archive_mode == "off":
        raise Refused("archive_mode is off: the backup's WAL would never reach the archive")
    for signature, _ in (calls["start"], calls["stop"]):
        (allowed,) = db.row("SELECT has_function_privilege(%s, 'execute')" % quote(signature))
        if allowed != "t":
            raise Refused(
                "role %s may not start a backup: it lacks EXECUTE on %s (GRANT EXECUTE ON FUNCTION %s TO %s)"
                % (user, signature.split("(")[0], signature, user)
            )
    for setting in calls["unlimited"]:
        db.rows("SET %s = 0" % setting)
    (version,) = db.row("SELECT version()")
    label = "freeze_start_" + datetime.datetime.now(datetime.timezone.utc).isoformat()
    lsn, segment, offset = db.row(
        "SELECT lsn, file_name, lpad(file_offset::text, 8, '0') "
        "FROM (SELECT %s AS lsn) s, pg_walfile_name_offset(s.lsn)" % (calls["start"][1] % (quote(label), fast))
    )
    return calls, version, lsn, segment, offset


def stop_backup(db, calls):
    """Stops the backup, waiting for its WAL to be archived: (lsn, segment, offset, backup_label, tablespace_map)."""
    call = calls["stop"][1]
    lsn, segment, offset, label, spcmap = db.row(
        "SELECT s.lsn, w.file_name, lpad(w.file_offset::text, 8, '0'), "
        "encode(convert_to(s.labelfile, 'UTF8'), 'hex'), encode(convert_to(coalesce(s.spcmapfile, ''), 'UTF8'), 'hex') "
        "FROM %s s, pg_walfile_name_offset(s.lsn) w" % call
    )
    return lsn, segment, offset, bytes.fromhex(label), bytes.fromhex(spcmap)


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


def confirm_archived(backup_cxt, layout, names):
    """
    Each WAL file of `names` is in this store, read back through WAL-E's
    storage layer. pg_backup_stop's wait proves only that archive_command
    exited 0: '/bin/true', or a command pushing to another prefix, pass it.
    """
    for name in names:
        uri = "%s/wal_%s/%s.lzo" % (layout.prefix.rstrip("/"), storage.CURRENT_VERSION, name)
        try:
            get_blobstore(storage.StorageLayout(uri)).uri_get_file(backup_cxt.creds, uri)
        except Exception as error:
            raise RuntimeError(
                "%s is not in this store (%s: %s); PostgreSQL reported it archived: "
                "does archive_command push to this store, through this sidecar?" % (name, uri, error)
            ) from error


class FileSync:
    """
    WAL-E's file backend writes objects in place and never fsyncs (1.1.1,
    blobstore/file/calling_format.py). On a file:// store, the backup's
    objects are synced before the sentinel is written, and the sentinel
    after, so that a sentinel that survives a crash names a whole backup.
    On any other store it does nothing.
    """

    def __init__(self, layout):
        # The store's directory, as FileKey names it: "/" + the URL's path.
        self.root = os.path.join("/", layout.path_prefix) if layout.is_file else None

    def tree(self, relative):
        """Every file under root/relative, then each directory up to the root."""
        if self.root is None:
            return
        top = os.path.join(self.root, relative)
        for directory, _, filenames in os.walk(top):
            for filename in filenames:
                fsync(os.path.join(directory, filename))
            fsync(directory)
        self.parents(top)

    def file(self, relative):
        """One file, then each directory up to the root."""
        if self.root is None:
            return
        path = os.path.join(self.root, relative)
        fsync(path)
        self.parents(path)

    def parents(self, path):
        while path.rstrip("/") != self.root.rstrip("/"):
            path = os.path.dirname(path.rstrip("/"))
            fsync(path)


def fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def terminate(signum, frame):
    """
    SIGTERM (the sidecar's timeout or shutdown): leave through SystemExit,
    so that `finally` blocks and WAL-E's temporary files are cleaned up,
    which the default action skips.
    """
    TERMINATING.set()
    sys.stderr.write("backup worker: terminated (SIGTERM), cleaning up\n")
    raise SystemExit(128 + signum)


def main(argv):
    if "backup-push" not in argv or len(argv) < 2:
        print("usage: [WAL-E flags] backup-push [backup-push flags] <PGDATA>", file=sys.stderr)
        return EXIT_USAGE
    # First: a SIGTERM during WAL-E's set-up (its imports take a second or
    # more on a loaded machine) must be told and end through SystemExit too,
    # not silently by the default action.
    signal.signal(signal.SIGTERM, terminate)
    try:
        # Not PSQL_BIN: WAL-E's check of it is a connection, which Session
        # makes below, with a clearer message when it fails.
        args, backup_cxt = wale_setup(argv, [cmd.LZOP_BIN, cmd.PV_BIN])
    except SetupFailed:
        return EXIT_SETUP
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
            calls, version, lsn, segment, offset = start_backup(db, fast="true")
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

        stop_lsn, stop_segment, stop_offset, label, spcmap = stop_backup(db, calls)
        db.close()
        say("stopped", stop_lsn)
        # The stop segment, and the backup history file pg_backup_stop wrote
        # and waited for (named for the start segment and its offset in hex).
        confirm_archived(backup_cxt, layout, [stop_segment, "%s.%08X.backup" % (segment, int(offset))])

        with tempfile.TemporaryDirectory(prefix="wale-sidecar-backup-") as scratch:
            extra = label_partition(count, pgdata, scratch, label, spcmap)
            uploader(extra)  # raises unless the whole partition is in the store
            total += extra.total_member_size
        sync = FileSync(layout)
        sync.tree("basebackups_%s/%s" % (storage.CURRENT_VERSION, name))

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
        sync.file("basebackups_%s/%s_backup_stop_sentinel.json" % (storage.CURRENT_VERSION, name))
        say("done", name)
        return EXIT_OK
    except Refused as refusal:
        say("refused", str(refusal))
        return EXIT_REFUSED
    except Exception as error:
        # No sentinel: the backup is never listed, never restored.
        say("failed", "%s: %s" % (type(error).__name__, error))
        raise
    finally:
        if db is not None and not db.closing:
            db.close()


sys.exit(main(sys.argv[1:]))
