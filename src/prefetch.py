# WAL-E's wal-prefetch for many segments, in one Python process.
#
# src/prefetcher.ts runs this with the interpreter that runs WAL-E:
#
#   python -c <this file> [WALE_FLAGS] wal-prefetch <spool>
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
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

# `python -c` puts the working directory first on the module path, where
# the installed `wal-e` has its own directory: take it off, so that nothing
# there can stand in for wal_e or boto.
if sys.path and sys.path[0] == "":
    del sys.path[0]
sys.argv[0] = "wal-e"  # for argparse's messages

from wal_e import cmd

PARALLEL = 8

stdout = threading.Lock()


def say(*words):
    """One whole line on stdout, whatever the other threads print."""
    with stdout:
        sys.stdout.write(" ".join(words) + "\n")
        sys.stdout.flush()


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
        # WAL-E's own parser and set-up, so that WALE_FLAGS and the
        # environment mean here what they mean to `wal-e`.
        args = cmd.build_parser().parse_args(flags + ["wal-prefetch", base, first])
        if args.terse:
            cmd.log_help.set_level(cmd.logging.WARNING)
        backup_cxt = cmd.configure_backup_cxt(args)
        cmd.external_program_check([cmd.LZOP_BIN])
    except cmd.UserException as error:
        cmd.logger.log(level=error.severity, msg=error.msg, detail=error.detail, hint=error.hint)
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
