/** `wale-sidecar restore`: its help, its flags, and one call to the restore (src/restore/run.ts). */
import { messageOf } from "../errors.ts";
import { runRestore } from "../restore/run.ts";
import type { RestoreOptions, TargetAction, TargetKind } from "../restore/steps.ts";
import { type Command, helpOrRefusal, loadConfig, parseOrExplain, readFlags, UsageError } from "./command.ts";

const HELP = `Usage: wale-sidecar restore (--via <sidecar URL> [--stream] | --direct) [options]

Restores PGDATA from the archive, for an init container: WAL-E backup-fetch
into PGDATA (which must bring the backup's backup_label, else the restore
fails), then the recovery settings for the PostgreSQL version in
PGDATA/PG_VERSION (12 and later: recovery.signal and postgresql.auto.conf;
11 and earlier: recovery.conf). Start PostgreSQL next: it replays WAL from
the archive to the target, or to the end of the archive.

Where PostgreSQL gets WAL (one is required):
  --via <URL>            through the sidecar: wget <URL>/wal-fetch/%f?dest=%p
                         (the sidecar shares PGDATA's volume); a failure is
                         retried, then stops recovery: it never ends it early
  --via <URL> --stream   through the sidecar's /wal/%f into %p
                         (for a database that does not share the volume);
                         needs WALE_SIDECAR_TOKEN unless <URL> is loopback
  --direct               WAL-E itself: wale-sidecar wal-fetch %f %p
                         (wale-sidecar and WAL-E on the database's PATH);
                         the same exits as --via: a failure never ends
                         recovery early

Options:
  --backup <name>        LATEST (the default) or a name from backup-list
  --target-time <ts>     stop at a time, e.g. '2024-05-01 12:00:00+00'
  --target-lsn <lsn>     stop at a WAL location, e.g. 0/3000060
  --target-name <name>   stop at a pg_create_restore_point name
  --target-action <a>    promote, pause (PostgreSQL's default) or shutdown
  --if-empty             if PGDATA already holds a database (PG_VERSION),
                         do nothing and exit 0: for an init container that
                         runs on every start of the pod. A restore that was
                         cut short is refused, or with --force redone
  --force                move a PGDATA that is not empty aside first
                         (to PGDATA.old-<time>, printed); nothing is deleted.
                         Refused while PGDATA/postmaster.pid names a live
                         process (PostgreSQL runs on it)
  --skip-fetch           PGDATA already holds a base backup (pg_basebackup,
                         a volume snapshot) with its backup_label: only
                         write the settings
  --owner <uid>:<gid>    the user that runs PostgreSQL; required as root
  --config-from <dir>    copy postgresql.conf, pg_hba.conf and pg_ident.conf
                         from <dir>, in place of the backup's. Without it,
                         the backup's own are kept (the sidecar's backups
                         hold them); a file in neither gets a default
                         (listen on all addresses; peer locally, md5 over
                         the network), as for an older stock WAL-E backup,
                         which leaves them out. Each file's source is printed
  --no-archive           append archive_mode = off to postgresql.auto.conf:
                         for a test restore or a clone, which must not
                         archive into the source's store once it promotes.
                         Without it, a restored configuration that archives
                         gets a WARNING line

PGDATA, WALE_BIN, WALE_FLAGS and WAL-E's variables come from the
environment, as for the sidecar. PGDATA ends at mode 0700. When
WALE_SIDECAR_TOKEN is set, restore_command's wget sends it as
"$WALE_SIDECAR_TOKEN": the PostgreSQL server needs it in its environment.
`;

export { UsageError };

const VALUE_FLAGS = [
  "--backup",
  "--target-time",
  "--target-lsn",
  "--target-name",
  "--target-action",
  "--via",
  "--owner",
  "--config-from",
];
const SWITCHES = ["--stream", "--direct", "--force", "--skip-fetch", "--if-empty", "--no-archive"];

const BACKUP = /^(LATEST|base_[0-9A-F]{24}_[0-9A-F]{8})$/;
const TIME = /^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?( ?(Z|UTC|[+-]\d{2}(:?\d{2})?))?$/;
const LSN = /^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/;
// restore_command runs through PostgreSQL's shell: the URL may hold nothing a shell treats specially.
const URL_CHARS = /^https?:\/\/[A-Za-z0-9.\-_~:[\]]+(\/[A-Za-z0-9.\-_~/]*)?$/;

const hasControlCharacter = (text: string) => [...text].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f);

/** Reads the flags; throws a UsageError with one line for anything wrong. */
export function parseRestoreArgs(args: string[]): RestoreOptions {
  const given = readFlags(args, VALUE_FLAGS, SWITCHES);

  const backup = given.get("--backup") ?? "LATEST";
  if (!BACKUP.test(backup))
    throw new UsageError(
      `--backup must be LATEST or a WAL-E backup name (base_<24 hex>_<8 hex>), not "${backup.slice(0, 80)}"`,
    );

  const targets = (["time", "lsn", "name"] as TargetKind[]).filter((k) => given.has(`--target-${k}`));
  if (targets.length > 1) throw new UsageError("give at most one of --target-time, --target-lsn and --target-name");
  const kind = targets[0];
  const target = kind ? { kind, value: given.get(`--target-${kind}`) as string } : undefined;
  if (target?.kind === "time" && !TIME.test(target.value)) {
    throw new UsageError(
      `--target-time must be a timestamp such as "2024-05-01 12:00:00+00", not "${target.value.slice(0, 80)}"`,
    );
  }
  if (target?.kind === "lsn" && !LSN.test(target.value))
    throw new UsageError(`--target-lsn must be an LSN such as 0/3000060, not "${target.value.slice(0, 80)}"`);
  if (target?.kind === "name" && (target.value.length > 63 || hasControlCharacter(target.value))) {
    throw new UsageError("--target-name must be a restore point name: at most 63 characters, no control characters");
  }

  const action = given.get("--target-action");
  if (action !== undefined && !["promote", "pause", "shutdown"].includes(action)) {
    throw new UsageError(`--target-action must be promote, pause or shutdown, not "${action.slice(0, 80)}"`);
  }
  if (action !== undefined && !target)
    throw new UsageError("--target-action needs a --target-time, --target-lsn or --target-name");

  const via = given.get("--via");
  if (via !== undefined && given.has("--direct")) throw new UsageError("give --via or --direct, not both");
  if (via === undefined && !given.has("--direct")) {
    throw new UsageError(
      "say where PostgreSQL gets WAL: --via <sidecar URL> (through the sidecar) or --direct (WAL-E itself)",
    );
  }
  if (given.has("--stream") && via === undefined) throw new UsageError("--stream goes with --via");
  if (via !== undefined && !URL_CHARS.test(via)) {
    throw new UsageError(
      `--via must be an http:// URL of the sidecar, such as http://wale:80, without query or special characters (got "${via.slice(0, 80)}")`,
    );
  }

  const ownerText = given.get("--owner");
  const ownerMatch = ownerText === undefined ? null : /^(\d{1,9}):(\d{1,9})$/.exec(ownerText);
  if (ownerText !== undefined && !ownerMatch)
    throw new UsageError(`--owner must be <uid>:<gid> in numbers, such as 70:70, not "${ownerText.slice(0, 80)}"`);

  const skipFetch = given.has("--skip-fetch");
  if (skipFetch && given.has("--backup")) throw new UsageError("--skip-fetch fetches no backup: drop --backup");
  if (skipFetch && given.has("--force"))
    throw new UsageError("--skip-fetch restores onto what PGDATA holds: drop --force");
  if (given.has("--if-empty") && skipFetch) {
    throw new UsageError("--if-empty leaves a PGDATA with a database alone: drop --skip-fetch");
  }

  return {
    backup,
    target,
    action: action as TargetAction | undefined,
    wal: via !== undefined ? { via: via.replace(/\/+$/, ""), stream: given.has("--stream") } : { direct: true },
    skipFetch,
    force: given.has("--force"),
    owner: ownerMatch ? { uid: Number(ownerMatch[1]), gid: Number(ownerMatch[2]) } : undefined,
    configFrom: given.get("--config-from"),
    ifEmpty: given.has("--if-empty"),
    noArchive: given.has("--no-archive"),
  };
}

export const restore: Command = {
  name: "restore",
  summary: "restore PGDATA from the archive: backup-fetch and recovery settings (init containers, PITR)",
  help: HELP,
  async run(runtime, args) {
    const early = helpOrRefusal(runtime, this, args);
    if (early !== undefined) return early;
    const options = parseOrExplain(runtime, this, () => parseRestoreArgs(args));
    if (!options) return 2;
    const config = loadConfig(runtime);
    if (!config) return 1;
    try {
      return await runRestore(runtime, config, { ...options, token: config.token !== undefined });
    } catch (error) {
      runtime.stderr(`wale-sidecar restore: ${messageOf(error)}\n`);
      return 1;
    }
  },
};
