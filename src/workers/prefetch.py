# WAL-E's wal-fetch for every file recovery asks for, in one Python process.
#
# src/wal/prefetcher.ts runs this, after src/workers/_prelude.py, with the
# interpreter that runs WAL-E:
#
#   python -c <prelude + this file> [WALE_FLAGS] wal-prefetch <spool>
#
# and writes jobs to its stdin, one a line:
#
#   fetch <id> <name> <dest>      a request waits for it: before any prefetch
#   prefetch <id> <name> <dest>   ahead of recovery, when a thread is free
#
# <name> is a WAL file name (a segment, a .history, a .backup label) and
# <dest> a path in the spool, which the sidecar names and moves on. A job
# begins, once a thread takes it, with
#
#   started <id>                 (WALE_FETCH_TIMEOUT counts from here)
#
# and ends with one line:
#
#   ok <id>                      <dest> holds the whole file
#   missing <id> file <root>     the file store has no <root>/wal_005/<name>.lzo
#   missing <id> located <uri>   WAL-E said it "could no longer locate" <uri>,
#                                and the store's WAL directory then listed WAL
#   missing <id> empty <uri>     the same, but that directory listed nothing:
#                                a new prefix, or a prefix with a typo
#   failed <id> <reason>         anything else; <dest> is removed
#
# A miss is only ever WAL-E's own word on this very object (the open of the
# file that WAL-E's layout names, or its log line for that URI in this
# thread), never an absence of news. src/archive/wale-archive.ts judges it.
#
# The file backend without GPG, WAL-E's layout and key, read straight into
# `lzop -d` and waited for with a blocking wait; lzop writes a big object
# into <dest> itself, a small one (mostly zeros) goes through
# write_allocated. WAL-E 1.1.1's own do_lzop_get copies the object through
# Python into a pipe, under gevent, and polls lzop's exit every 100 ms
# (pipeline.PipelineCommand.wait): most of a segment's CPU, and up to 100 ms
# of its latency. Any other store or GPG: WAL-E's own wal_restore, as
# `wal-e wal-fetch -p=0` runs it.
#
# Like the installed `wal-e` command, this does not monkey-patch the
# standard library for gevent (only `python -m wal_e.cmd` does), so boto's
# sockets block: jobs run in PARALLEL threads. WAL-E's own gevent code gets
# a hub per thread.
#
# At the end of stdin it finishes what it has and exits 0; 2 means bad
# arguments, 3 that WAL-E could not be set up, 1 an error of this script's
# own (with a traceback).
import collections
import fcntl
import logging
import subprocess
import traceback

from wal_e import pipeline

# (src/workers/_prelude.py comes first: sys, cmd, say, wale_setup, exit_with_parent, wal_keys, threading, os.)

PARALLEL = 4
# Read from lzop in CHUNKs (also the pipe's size), looked at in BLOCKs: a block of zeros is allocated, not written.
CHUNK = 1 << 20
BLOCK = 64 << 10
ZEROS = bytes(BLOCK)
# An object this big holds mostly WAL, not zeros (lzop makes 256 KB of zeros
# about 1 KB): lzop writes it to <dest> itself, which spares a copy through
# a pipe and Python for each byte (half a default 16 MB segment).
DIRECT_FROM = 8 << 20
F_SETPIPE_SZ = 1031  # Linux's fcntl; Python 3.10+ has it as fcntl.F_SETPIPE_SZ
LOCATE = "could no longer locate object while performing wal restore"


class Jobs:
    """
    Fetches first, then prefetches, each in the order given. At most
    PARALLEL - 1 prefetches run at once: one thread is always free for a
    request's fetch, so prefetches stuck on the network (a blackholed
    connection, throttling WAL-E retries) never hold up recovery.
    """

    def __init__(self):
        self.urgent = collections.deque()
        self.background = collections.deque()
        self.prefetching = 0
        self.closed = False
        self.cond = threading.Condition()

    def put(self, urgent, job):
        with self.cond:
            (self.urgent if urgent else self.background).append(job)
            self.cond.notify_all()

    def close(self):
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def _prefetchable(self):
        return self.background and self.prefetching < PARALLEL - 1

    def take(self):
        """The next job and whether it is a prefetch, or None once stdin is closed and all is taken."""
        with self.cond:
            while True:
                if self.urgent:
                    return self.urgent.popleft(), False
                if self._prefetchable():
                    self.prefetching += 1
                    return self.background.popleft(), True
                if self.closed and not self.background:
                    return None
                self.cond.wait()

    def done(self, prefetch):
        if prefetch:
            with self.cond:
                self.prefetching -= 1
                self.cond.notify_all()


class Heard(logging.Handler):
    """WAL-E's log lines, for the thread that asks (a miss is told in the log)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.local = threading.local()

    def emit(self, record):
        lines = getattr(self.local, "lines", None)
        if lines is not None:
            lines.append(record.getMessage())

    def listen(self):
        self.local.lines = []
        return self.local.lines


def write_allocated(pipe, dest):
    """
    Writes what `pipe` gives to `dest`, where runs of zeros are allocated
    (posix_fallocate) rather than written. A segment that a switch closed is
    mostly zeros, and on this kind of machine writing 16 MB of page cache
    costs more CPU than lzop's decompression: the allocation keeps what
    PostgreSQL's own zero-filled segments have, blocks on disk (a recycled
    segment is written over without ENOSPC), at a fraction of the cost;
    reads of them give zeros. Not a sparse file: nothing is left as a hole.
    """
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        offset = 0
        zeros_from = None  # the start of a run of zeros not yet allocated
        while True:
            filled = 0
            while filled < CHUNK:
                got = pipe.readinto(view[filled:])
                if not got:
                    break
                filled += got
            for start in range(0, filled, BLOCK):
                block = view[start : min(start + BLOCK, filled)]
                # startswith is a memcmp; == on a memoryview compares byte by byte in Python's own loop.
                if buffer.startswith(ZEROS if len(block) == BLOCK else bytes(len(block)), start):
                    if zeros_from is None:
                        zeros_from = offset
                else:
                    if zeros_from is not None:
                        allocate(fd, zeros_from, offset - zeros_from)
                        zeros_from = None
                    os.pwrite(fd, block, offset)
                offset += len(block)
            if filled < CHUNK:
                break
        if zeros_from is not None:
            allocate(fd, zeros_from, offset - zeros_from)
    finally:
        os.close(fd)


def allocate(fd, offset, length):
    try:
        os.posix_fallocate(fd, offset, length)
    except OSError:  # a file system that cannot: write the zeros
        os.pwrite(fd, bytes(length), offset)


def lzop_d(source, out):
    """`lzop -d` reading the open object `source`, writing to the descriptor `out`."""
    return subprocess.Popen([pipeline.LZOP_BIN, "-d", "-c", "-"], stdin=source, stdout=out, close_fds=True)


def lzop_into(source, dest):
    """`lzop -d` from the open object `source` straight into <dest>; lzop's exit code."""
    out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        lzop = lzop_d(source, out)
    finally:
        os.close(out)
    return lzop.wait()


def lzop_allocated(source, dest):
    """`lzop -d` from `source` into <dest> through write_allocated; lzop's exit code."""
    read, write = os.pipe()
    try:
        fcntl.fcntl(read, F_SETPIPE_SZ, CHUNK)
    except OSError:
        pass  # a smaller pipe only means more reads
    try:
        lzop = lzop_d(source, write)
    except BaseException:
        os.close(read)  # a long-lived worker must not leak it (EMFILE, ENOMEM)
        raise
    finally:
        os.close(write)
    try:
        with open(read, "rb", buffering=0) as pipe:
            write_allocated(pipe, dest)
    finally:
        code = lzop.wait()
    return code


def main(argv):
    if len(argv) < 2 or argv[-2] != "wal-prefetch":
        print("usage: [WAL-E flags] wal-prefetch <base>, then jobs on stdin", file=sys.stderr)
        return EXIT_USAGE
    flags = argv[:-2]
    exit_with_parent()
    try:
        # wal-fetch's parser, for the flags; the name and the destination are placeholders.
        _, backup_cxt = wale_setup(flags + ["wal-fetch", "-p=0", "000000010000000000000001", "-"], [cmd.LZOP_BIN])
    except SetupFailed:
        return EXIT_SETUP
    layout = backup_cxt.layout
    plain_file = layout.scheme == "file" and backup_cxt.gpg_key_id is None
    heard = Heard()
    # --terse raises the root logger to WARNING, which would drop WAL-E's
    # INFO about a missing object before any handler: the handlers keep
    # their own level, and this one hears it.
    if logging.root.level > logging.INFO:
        logging.root.setLevel(logging.INFO)
    logging.root.addHandler(heard)

    def url_of(name):
        return "{0}://{1}/{2}".format(layout.scheme, layout.store_name(), layout.wal_path(name))

    def fetch_file(name, dest):
        from wal_e.blobstore.file import file_util

        key = file_util._uri_to_key(backup_cxt.creds, url_of(name))
        try:
            source = open(key.path, "rb")
        except FileNotFoundError:
            root = key.path[: -len("/wal_005/%s.lzo" % name)]
            if key.path != "%s/wal_005/%s.lzo" % (root, name):
                raise
            return ("missing", "file", root)
        with source:
            if os.fstat(source.fileno()).st_size >= DIRECT_FROM:
                code = lzop_into(source, dest)
            else:
                code = lzop_allocated(source, dest)
        if code != 0:
            raise RuntimeError("lzop -d exited with code %d" % code)
        return ("ok",)

    def fetch_wale(name, dest):
        url = url_of(name)
        lines = heard.listen()
        try:
            if backup_cxt.wal_restore(name, dest, 0):
                return ("ok",)
        except FileNotFoundError as error:  # the file backend with GPG
            root = (error.filename or "")[: -len("/wal_005/%s.lzo" % name)]
            if error.filename != "%s/wal_005/%s.lzo" % (root, name):
                raise
            return ("missing", "file", root)
        if not any(LOCATE in line and ("located is %s." % url) in line for line in lines):
            said = " | ".join(line.split("\n")[0] for line in lines[-3:])
            return ("failed", "WAL-E could not fetch it: " + (said or "no reason given"))
        # The same words come for a bucket that is not there, and for a
        # prefix with a typo in a bucket that is: the store's WAL directory
        # must list, now (a bucket that is not there raises), and whether it
        # holds WAL is said too (its first key is one request: the backends
        # page their listings lazily). An empty one is no archive to restore
        # from, but it is a new prefix's first push.
        listing = backup_cxt.worker.BackupList(backup_cxt.new_connection(), layout, False)
        if next(wal_keys(listing, layout), None) is None:
            return ("missing", "empty", url)
        return ("missing", "located", url)

    fetch = fetch_file if plain_file else fetch_wale

    def run(job):
        verb, ident, name, dest = job
        say("started", ident)
        try:
            if verb == "prefetch":  # into <spool>/.wal-e/prefetch/running/<name>/, as WAL-E's wal-prefetch
                os.makedirs(os.path.dirname(dest), 0o700, exist_ok=True)
            answer = fetch(name, dest)
        except BaseException as error:  # WAL-E raises SystemExit, among others
            answer = ("failed", "%s: %s" % (type(error).__name__, error))
        if answer[0] != "ok":
            try:
                os.unlink(dest)
            except FileNotFoundError:
                pass
        say(answer[0], ident, *answer[1:])

    jobs = Jobs()

    def work():
        try:
            for job, prefetch in iter(jobs.take, None):
                try:
                    run(job)
                finally:
                    jobs.done(prefetch)
        except BaseException:
            # A job this thread took would never be answered: end the
            # worker, and the sidecar fetches those files itself.
            traceback.print_exc()
            os._exit(1)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(PARALLEL)]
    for thread in threads:
        thread.start()
    for line in sys.stdin:
        words = line.rstrip("\n").split("\t")
        if len(words) != 4 or words[0] not in ("fetch", "prefetch"):
            if line.strip():
                print("ignored a line that is not a job: %r" % line, file=sys.stderr)
            continue
        jobs.put(words[0] == "fetch", tuple(words))
    jobs.close()
    for thread in threads:
        thread.join()
    return EXIT_OK


sys.exit(main(sys.argv[1:]))
