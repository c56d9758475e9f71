/**
 * The restore, in order: every check first, then the changes, each one
 * reported on stdout; a refusal is one line on stderr and exit 1. The
 * restore command (src/cli/restore.ts) parses the flags and calls it.
 */
import { rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { backupFetch } from "../archive/wale-archive.ts";
import type { Config } from "../config/config.ts";
import { ARCHIVE_NEEDS_TOKEN, isLoopback } from "../config/exposure.ts";
import type { Runtime } from "../runtime/types.ts";
import { lastLines, WaleRunner } from "../wale/runner.ts";
import { majorVersion } from "./pg-version.ts";
import {
  archivingLeftOn,
  asideName,
  chownTree,
  describePlaced,
  hasBackupLabel,
  INCOMPLETE_MARKER,
  livePostmaster,
  lockDown,
  makePgdata,
  moveAside,
  pgdataState,
  placeConfigFiles,
  type RestoreOptions,
  recoveryFiles,
  writeNoArchive,
  writeRecoveryFiles,
} from "./steps.ts";

/** The restore itself: every check first, then the changes, each one reported. */
export async function runRestore(runtime: Runtime, config: Config, options: RestoreOptions): Promise<number> {
  const say = (line: string) => runtime.stdout(`wale-sidecar restore: ${line}\n`);
  const refuse = (line: string) => {
    runtime.stderr(`wale-sidecar restore: ${line}\n`);
    return 1;
  };
  const pgdata = config.pgdata;
  if ("via" in options.wal && options.wal.stream && !options.token && !isLoopback(new URL(options.wal.via).hostname)) {
    return refuse(`--stream needs WALE_SIDECAR_TOKEN here: ${ARCHIVE_NEEDS_TOKEN}`);
  }
  const uid = process.getuid?.();
  if (uid === 0 && !options.owner) {
    return refuse(
      "running as root: give --owner <uid>:<gid>, the user that runs PostgreSQL (70:70 in the Alpine images, 999:999 in the Debian ones)",
    );
  }
  if (uid !== 0 && options.owner && options.owner.uid !== uid)
    return refuse(`only root can give PGDATA to another user (--owner ${options.owner.uid}, running as ${uid})`);
  // stat: the directory may be a symlink too (a mounted ConfigMap's path often is).
  if (options.configFrom && !(await stat(options.configFrom).catch(() => null))?.isDirectory()) {
    return refuse(`--config-from ${options.configFrom} is not a directory`);
  }

  const state = await pgdataState(pgdata);
  if (state.kind === "not-a-directory") return refuse(`PGDATA ${pgdata} exists and is not a directory`);
  // --force would move a running cluster aside, --skip-fetch write recovery settings under it.
  const postmaster =
    state.kind === "not-empty" && (options.force || options.skipFetch) ? await livePostmaster(pgdata) : null;
  if (postmaster !== null) {
    return refuse(
      `PostgreSQL is running on ${pgdata} (postmaster.pid names process ${postmaster}, which is alive): stop it before restoring`,
    );
  }
  if (options.skipFetch) {
    if (state.kind !== "not-empty")
      return refuse(
        `--skip-fetch needs a base backup in PGDATA, and ${pgdata} is ${state.kind === "missing" ? "missing" : "empty"}`,
      );
    if (!(await hasBackupLabel(pgdata)))
      return refuse(
        `--skip-fetch needs a base backup in PGDATA, and ${pgdata}/backup_label is missing or does not start with "START WAL LOCATION:": without it PostgreSQL would start from a later checkpoint and recover a corrupt copy (pg_basebackup writes one; take the backup again)`,
      );
  } else if (state.kind === "not-empty") {
    const incomplete = (await pgdataState(join(pgdata, INCOMPLETE_MARKER))).kind !== "missing";
    const database = (await pgdataState(join(pgdata, "PG_VERSION"))).kind !== "missing";
    if (options.ifEmpty && database && !incomplete) {
      say(`${pgdata} already holds a database (PG_VERSION): nothing to do`);
      return 0;
    }
    if (incomplete && !options.force) {
      return refuse(
        `an earlier restore into ${pgdata} did not finish (${INCOMPLETE_MARKER}): PostgreSQL must not start on it. --force moves it aside and restores again.`,
      );
    }
    if (!options.force) {
      return refuse(
        `PGDATA ${pgdata} is not empty (${state.entries} entries): refusing to restore over it. --force moves it aside first.`,
      );
    }
    const aside = await asideName(pgdata, new Date());
    await moveAside(pgdata, aside);
    say(`moved the old PGDATA aside to ${aside}`);
  }

  if (!options.skipFetch) {
    await makePgdata(pgdata);
    await writeFile(
      join(pgdata, INCOMPLETE_MARKER),
      "wale-sidecar restore is not done with this PGDATA; do not start PostgreSQL on it.\n",
    );
    say(`fetching base backup ${options.backup} into ${pgdata} (WAL-E backup-fetch)`);
    const fetched = await backupFetch(new WaleRunner(runtime, config.wale), config, options.backup);
    if (fetched.kind === "failed") {
      const { wale } = fetched;
      const tail = lastLines(wale.stderr);
      return refuse(
        `WAL-E backup-fetch exited with code ${wale.exitCode}; ${pgdata} holds a partial restore (run again with --force)${tail ? `\n${tail}` : ""}`,
      );
    }
    if (!(await hasBackupLabel(pgdata)))
      return refuse(
        `WAL-E backup-fetch exited 0 but ${pgdata}/backup_label is missing or does not start with "START WAL LOCATION:": backup ${options.backup} is incomplete in the store (a partition is missing), and ${pgdata} must not be started (run again with --force, or give an older --backup)`,
      );
  }

  const major = await majorVersion(pgdata);
  const files = recoveryFiles(options, major, new Date());
  await writeRecoveryFiles(pgdata, files);
  say(
    `PostgreSQL ${major}: wrote the recovery settings to ${files.settings.file}${files.signal ? ` and created ${files.signal}` : ""}`,
  );
  for (const placed of await placeConfigFiles(pgdata, options.configFrom))
    say(describePlaced(placed, options.configFrom));
  if (options.noArchive) {
    await writeNoArchive(pgdata);
    say("archive_mode = off appended to postgresql.auto.conf (--no-archive): this copy archives nothing");
  }
  const archiving = await archivingLeftOn(pgdata);
  if (archiving) {
    // A clone that promotes would push its WAL and its new timeline's .history into the source's store.
    say(
      `WARNING: the restored configuration keeps archive_mode on with ${archiving}: once this server promotes it archives there, and if that is the source's store its new timeline's .history blocks the source's own after a failover. For a test restore or a clone, run restore with --no-archive, or point archive_command at a store of its own.`,
    );
  }

  if (options.owner) await chownTree(pgdata, options.owner);
  await lockDown(pgdata);
  await rm(join(pgdata, INCOMPLETE_MARKER), { force: true });
  say(`${pgdata} is mode 0700${options.owner ? `, owned by ${options.owner.uid}:${options.owner.gid}` : ""}`);

  const goal = options.target
    ? `to ${options.target.kind} ${options.target.value}, then ${options.action ?? "pause"}`
    : "to the end of the archive, then promote";
  const source =
    "direct" in options.wal
      ? "WAL-E (wale-sidecar and WAL-E must be on its PATH)"
      : `the sidecar at ${options.wal.via}`;
  say(`next: start PostgreSQL on ${pgdata}; it replays WAL from ${source} ${goal}`);
  return 0;
}
