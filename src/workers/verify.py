# Lists a WAL-E store for `wale-sidecar verify`, in one Python process.
#
# src/archive/verify-store.ts runs this, after src/workers/_prelude.py, with the
# interpreter that runs WAL-E:
#
#   python -c <prelude + this file> [WALE_FLAGS] verify
#
# It lists the store through WAL-E's own storage layer (BackupList, which
# every backend WAL-E 1.1 supports implements: file, s3, wabs, swift, gs),
# so WALE_*_PREFIX and the credentials mean here what they mean to
# `wal-e backup-list`. Two listings, each paged by the backend: the base
# backups' directory and the WAL directory. The only other requests are one
# read of each backup's stop sentinel (its stop segment is inside), as
# `wal-e backup-list --detail` does: none per segment. The sentinel is read
# here with the backend's own _backup_detail, not BackupInfo.load_detail:
# WAL-E 1.1's file backend's load_detail does nothing, so `backup-list
# --detail` on a file store shows no stop segment.
#
# It prints, one a line, in no particular order:
#   backup <name> <start segment> <stop segment or -> <sentinel's last-modified>
#   wal <file name, without .lzo> <last-modified>
#   done <backups> <wal objects>
# and judges nothing: src/archive/verify.ts does the analysis.
#
#   python -c <prelude + this file> [WALE_FLAGS] verify --first-wal
#
# lists the WAL directory only, and stops at its first object of WAL-E's:
#   wal <file name, without .lzo> <last-modified>     (none when it holds nothing)
#   done
# On S3 that is one request: boto 2's bucket.list() pages lazily (1,000 keys
# a page). src/archive/not-in-archive.ts asks it before it believes WAL-E's
# "could no longer locate object": a misspelled prefix in a bucket that is
# there lists fine, and empty.

# (src/workers/_prelude.py comes first: sys, cmd, say, wale_setup, wal_keys.)
import datetime
import email.utils
import json
import re

from wal_e import storage


def stamp(modified):
    """A backend's last-modified time as one word: ISO 8601 as listed, '-' when none."""
    if not modified:
        return "-"
    if isinstance(modified, datetime.datetime):  # wabs, gs
        return modified.isoformat()
    text = str(modified)
    if " " in text:  # RFC 1123, as a GET's header gives it
        return email.utils.parsedate_to_datetime(text).isoformat()
    return text


def wal_objects(listing, layout):
    """The WAL directory's objects of WAL-E's, as (name without .lzo, last-modified), as listed."""
    for key, name in wal_keys(listing, layout):
        yield name[:-4] if name.endswith(".lzo") else name, stamp(layout.key_last_modified(key))


def main(argv):
    first_wal = argv[-2:] == ["verify", "--first-wal"]
    if not first_wal and (not argv or argv[-1] != "verify"):
        print("usage: [WAL-E flags] verify [--first-wal]", file=sys.stderr)
        return EXIT_USAGE
    flags = argv[:-2] if first_wal else argv[:-1]
    try:
        _, backup_cxt = wale_setup(flags + ["backup-list"], [])
    except SetupFailed:
        return EXIT_SETUP
    layout = backup_cxt.layout
    conn = backup_cxt.new_connection()
    listing = backup_cxt.worker.BackupList(conn, layout, True)

    if first_wal:
        for name, modified in wal_objects(listing, layout):
            say("wal", name, modified)
            break
        say("done")
        return EXIT_OK

    base_directory = layout.basebackups()
    sentinel = re.compile(storage.COMPLETE_BASE_BACKUP_REGEXP).match
    backups = 0
    for key in listing._backup_list(base_directory):
        name = layout.key_name(key)[len(base_directory.lstrip("/")):]
        match = None if "/" in name else sentinel(name)
        if not match:
            continue  # a backup's partitions, or not WAL-E's
        backups += 1
        groups = match.groupdict()
        # Before the read: boto 2 sets a key's last_modified from the GET's
        # Last-Modified header, in RFC 1123 form, where a listing gives ISO 8601.
        finished = stamp(layout.key_last_modified(key))
        try:
            stop = json.loads(listing._backup_detail(key)).get("wal_segment_backup_stop") or "-"
        except ValueError:
            stop = "-"  # a sentinel that is not JSON: no stop segment known
        say("backup", "base_{filename}_{offset}".format(**groups), groups["filename"], stop, finished)

    objects = 0
    for name, modified in wal_objects(listing, layout):
        objects += 1
        say("wal", name, modified)
    say("done", backups, objects)
    return EXIT_OK


sys.exit(main(sys.argv[1:]))
