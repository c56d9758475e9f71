# WAL-E's wal-prefetch for many segments, in one Python process.
#
# src/wal/prefetcher.ts runs this, after src/workers/_prelude.py, with the
# interpreter that runs WAL-E:
#
#   python -c <prelude + this file> [WALE_FLAGS] wal-prefetch <spool>
#
# and writes segment names to its stdin, one a line, as recovery moves on.
# Each goes through wal_prefetch, the very function behind
# `wal-e wal-prefetch <spool> <segment>`: it downloads into
# <spool>/.wal-e/prefetch/running/<segment>/ and links the file into
# <spool>/.wal-e/prefetch/ only once it is whole; a failed download is
# removed, never linked.
#
# Up to PARALLEL downloads run at once, each in a thread of its own. Like
# the installed `wal-e` command, this does not monkey-patch the standard
# library for gevent (only `python -m wal_e.cmd` does), so boto's sockets
# block: in greenlets, downloads from S3 would run one after another.
# WAL-E's own gevent code gets a hub per thread.
#
# Prints "ok <segment>" once a segment is in place, "failed <segment>
# <reason>" when it will not be (the end of the archive is the common case),
# each as it happens. At the end of stdin it finishes what it has and exits
# 0; 2 means bad arguments, 3 that WAL-E could not be set up, and 1 an
# error of this script's own (with a traceback).
from concurrent.futures import ThreadPoolExecutor

# (src/workers/_prelude.py comes first: sys, cmd, say, wale_setup.)

PARALLEL = 8


def main(argv):
    if len(argv) < 2 or argv[-2] != "wal-prefetch":
        print("usage: [WAL-E flags] wal-prefetch <base>, then segment names on stdin", file=sys.stderr)
        return 2
    flags, base = argv[:-2], argv[-1]
    segments = (segment for segment in (line.strip() for line in sys.stdin) if segment)
    first = next(segments, None)
    if first is None:
        return 0
    try:
        _, backup_cxt = wale_setup(flags + ["wal-prefetch", base, first], [cmd.LZOP_BIN])
    except SetupFailed:
        return 3

    def prefetch(segment):
        try:
            backup_cxt.wal_prefetch(base, segment)
        except BaseException as error:  # a failed download raises SystemExit
            say("failed", segment, " ".join(("%s: %s" % (type(error).__name__, error)).split()))
        else:
            say("ok", segment)

    with ThreadPoolExecutor(PARALLEL) as pool:
        pool.submit(prefetch, first)
        for segment in segments:
            pool.submit(prefetch, segment)
    return 0


sys.exit(main(sys.argv[1:]))
