# The shared start of WAL-E's Python workers (src/workers/*.py).
#
# src/wale/runner.ts runs a worker with the interpreter that runs WAL-E, as
#
#   python -c <this file, then the worker's> [WAL-E flags] <subcommand> ...
#
# so this text and the worker's are one program. The line protocol both
# speak (src/workers/protocol.ts reads it): each line on stdout is a verb
# and its words, printed whole with say(); stderr is WAL-E's own log.
# Exit codes: the EXIT_ constants below.
import os
import sys
import threading
import time

# `python -c` puts the working directory first on the module path, where
# the installed `wal-e` has its own directory: take it off, so that nothing
# there can stand in for wal_e or boto.
if sys.path and sys.path[0] == "":
    del sys.path[0]
sys.argv[0] = "wal-e"  # for argparse's messages

from wal_e import cmd

# The exit codes, as src/workers/protocol.ts's WORKER_EXIT names them
# (test/workers/protocol.test.ts holds the two lists to each other).
EXIT_OK = 0  # done
EXIT_ERROR = 1  # an error of the worker's own, with a traceback (Python's own exit for one)
EXIT_USAGE = 2  # bad arguments
EXIT_SETUP = 3  # WAL-E could not be set up (no store, bad flags); WAL-E logged why
EXIT_REFUSED = 4  # the worker printed "refused <reason>" and started nothing

_stdout = threading.Lock()


def say(*words):
    """One whole line on stdout, whatever the other threads print."""
    line = " ".join(" ".join(str(word).split()) for word in words)
    with _stdout:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class SetupFailed(Exception):
    """WAL-E's set-up refused (no store, bad flags): WAL-E has logged why."""


def wale_setup(argv, programs):
    """
    WAL-E's own parser and set-up, so that WALE_FLAGS and the environment
    mean here what they mean to `wal-e`: (parsed args, WAL-E's backup
    context for the store). Checks that `programs` are on PATH, as WAL-E's
    main does for the same subcommand.
    """
    try:
        args = cmd.build_parser().parse_args(argv)
        if args.terse:
            cmd.log_help.set_level(cmd.logging.WARNING)
        backup_cxt = cmd.configure_backup_cxt(args)
        cmd.external_program_check(programs)
    except cmd.UserException as error:
        cmd.logger.log(level=error.severity, msg=error.msg, detail=error.detail, hint=error.hint)
        raise SetupFailed() from error
    return args, backup_cxt


def exit_with_parent():
    """
    Ends this process once the sidecar that started it is gone (a kill -9
    leaves no one to kill the process group): a worker must not go on
    working for no one.
    """
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(EXIT_ERROR)

    threading.Thread(target=watch, daemon=True).start()


def wal_keys(listing, layout):
    """
    The store's WAL directory's objects of WAL-E's, as (key, name), as the
    backend lists them (paged lazily: the first is one request on S3). WAL-E
    1.1.1 writes <wal directory>/<name>.lzo only; a deeper path is not its.
    """
    wal_directory = layout.wal_directory()
    for key in listing._backup_list(wal_directory):
        name = layout.key_name(key)[len(wal_directory.lstrip("/")):]
        if "/" not in name:
            yield key, name
