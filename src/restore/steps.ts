/**
 * A restore as plain steps: what the options mean, which recovery settings
 * a PostgreSQL major version needs, and the file work around WAL-E's
 * backup-fetch. The command in src/cli/restore.ts runs them in order.
 */
import {
  chmod,
  copyFile,
  lchown,
  lstat,
  mkdir,
  readdir,
  readFile,
  realpath,
  rename,
  rm,
  stat,
  writeFile,
} from "node:fs/promises";
import { join } from "node:path";
import { isAlive } from "../runtime/pid.ts";

export type TargetKind = "time" | "lsn" | "name";
export type TargetAction = "promote" | "pause" | "shutdown";

export interface RestoreOptions {
  /** LATEST or a WAL-E backup name. */
  backup: string;
  target?: { kind: TargetKind; value: string };
  action?: TargetAction;
  /** Where restore_command gets WAL: the sidecar (by /wal-fetch, or /wal when streaming) or WAL-E itself. */
  wal: { via: string; stream: boolean } | { direct: true };
  /** The sidecar wants WALE_SIDECAR_TOKEN: wget sends it, expanded by the shell PostgreSQL runs it in. */
  token?: boolean;
  /** A PGDATA that already holds a database is left alone, and that is success (for init containers). */
  ifEmpty?: boolean;
  /** PGDATA already holds a base backup (pg_basebackup, a snapshot): only write the settings. */
  skipFetch: boolean;
  force: boolean;
  owner?: { uid: number; gid: number };
  /** A directory holding postgresql.conf, pg_hba.conf and pg_ident.conf to bring back. */
  configFrom?: string;
  /** Append archive_mode = off to postgresql.auto.conf: a test restore or clone must not archive into the source's store. */
  noArchive?: boolean;
}

/** How restore_command tries a fetch that failed before it gives up with 255, both ways (`wale-sidecar wal-fetch` too). */
export const FETCH_RETRIES = { tries: 6, delayMs: 5_000 };

/**
 * restore_command for the options. PostgreSQL runs it through a shell, so
 * every part is checked first.
 *
 * PostgreSQL reads any exit from 1 to 125 as "not in the archive" and ends
 * recovery there, promoting a database that lacks the rest of the WAL; only
 * an exit above 125 aborts recovery. wget exits 8 for a 404 and a 500 alike.
 * So the sidecar is asked with missing=ok, which turns a confirmed absence
 * into a 200 that says so, and the shell maps: fetched → 0 (once %p is there
 * and not empty; the word alone is not trusted), missing → 1,
 * anything else (WAL-E failing, the sidecar restarting or busy) → tried
 * again, 6 times 5 s apart, then 255, which stops PostgreSQL rather than
 * ending recovery early. A restart of the server resumes the recovery.
 */
export function restoreCommand(wal: RestoreOptions["wal"], token = false): string {
  // Without a sidecar: the same rule for "not in the archive", and the same exits, from the binary itself (src/cli/wal-fetch.ts).
  if ("direct" in wal) return "wale-sidecar wal-fetch %f %p";
  // The token stays out of PGDATA (and every later base backup): the shell expands it from the server's environment.
  const header = token ? `--header "Authorization: Bearer $WALE_SIDECAR_TOKEN" ` : "";
  const count = Array.from({ length: FETCH_RETRIES.tries }, (_, i) => i + 1).join(" ");
  const tries = (get: string) =>
    `ok=; for i in ${count}; do ${get} && ok=1 && break; sleep ${FETCH_RETRIES.delayMs / 1000}; done`;
  if (wal.stream) {
    // Into a temporary file first: wget leaves a partial file behind when a transfer breaks.
    return (
      `${tries(`wget -q -O %p.part ${header}"${wal.via}/wal/%f?missing=ok"`)}; ` +
      `test -n "$ok" || { rm -f %p.part; exit 255; }; test -s %p.part || { rm -f %p.part; exit 1; }; mv %p.part %p`
    );
  }
  return (
    `${tries(`r=$(wget -q -O - ${header}"${wal.via}/wal-fetch/%f?dest=%p&missing=ok")`)}; ` +
    `case "$r" in fetched*) test -s %p && exit 0; exit 255;; missing*) exit 1;; esac; exit 255`
  );
}

/** A string value in postgresql.conf syntax. */
const quote = (value: string) => `'${value.replace(/\\/g, "\\\\").replace(/'/g, "''")}'`;

export interface RecoveryFiles {
  /** The file that gets the settings, and whether they are appended to it. */
  settings: { file: "postgresql.auto.conf" | "recovery.conf"; append: boolean; text: string };
  /** An empty file to create (12 and later). */
  signal?: "recovery.signal";
}

/**
 * The recovery settings for a major version. From 12 on they are ordinary
 * settings: appended to postgresql.auto.conf (the last one read wins) with
 * recovery.signal beside it. They stay in that file after recovery and come
 * back with every later base backup, so every target is written, the unused
 * ones empty: a target left from an earlier restore must not stop this one.
 * Up to 11 they go in recovery.conf, which PostgreSQL renames when done.
 */
export function recoveryFiles(options: RestoreOptions, major: number, now: Date): RecoveryFiles {
  const lines = [
    `# Written by wale-sidecar restore at ${now.toISOString()}`,
    `restore_command = ${quote(restoreCommand(options.wal, options.token))}`,
  ];
  const target = options.target;
  if (major >= 12) {
    // Up to 14 setting any target, even to '', after another one is an error: the chosen one comes last.
    const chosen = target ? `recovery_target_${target.kind}` : undefined;
    for (const name of [
      "recovery_target",
      "recovery_target_lsn",
      "recovery_target_name",
      "recovery_target_time",
      "recovery_target_xid",
    ]) {
      if (name !== chosen) lines.push(`${name} = ''`);
    }
    if (target) lines.push(`${chosen} = ${quote(target.value)}`);
    lines.push(`recovery_target_action = ${quote(options.action ?? "pause")}`);
    return {
      settings: { file: "postgresql.auto.conf", append: true, text: `\n${lines.join("\n")}\n` },
      signal: "recovery.signal",
    };
  }
  // 12 and later follow the latest timeline by default; 11 and earlier need asking.
  lines.push("recovery_target_timeline = 'latest'");
  if (target) lines.push(`recovery_target_${target.kind} = ${quote(target.value)}`);
  if (target && options.action) lines.push(`recovery_target_action = ${quote(options.action)}`);
  return { settings: { file: "recovery.conf", append: false, text: `${lines.join("\n")}\n` } };
}

/**
 * pg_hba.conf when the backup holds none and no --config-from was given:
 * local connections by peer, network connections with a password. md5
 * accepts passwords stored as md5 or as SCRAM, so it suits every version.
 */
export const DEFAULT_HBA = `# Written by wale-sidecar restore: the backup held no pg_hba.conf (stock WAL-E leaves it out).
# Local connections as the same operating system user; network connections with a password.
# TYPE  DATABASE     USER  ADDRESS  METHOD
local   all          all            peer
local   replication  all            peer
host    all          all   all      md5
host    replication  all   all      md5
`;

export const DEFAULT_IDENT =
  "# Written by wale-sidecar restore: the backup held no pg_ident.conf (stock WAL-E leaves it out).\n";

/** postgresql.conf when the backup holds none: without one PostgreSQL does not start. */
export const DEFAULT_POSTGRESQL_CONF = `# Written by wale-sidecar restore: the backup held no postgresql.conf (stock WAL-E leaves it out).
# Bring your own with --config-from; this one only lets clients in over the network.
listen_addresses = '*'
`;

/** The files that stock WAL-E leaves out of a backup (its tar_partition.PG_CONF), with what stands in for each. */
export const CONFIG_FILES = [
  ["postgresql.conf", DEFAULT_POSTGRESQL_CONF],
  ["pg_hba.conf", DEFAULT_HBA],
  ["pg_ident.conf", DEFAULT_IDENT],
] as const;

export type ConfigFile = (typeof CONFIG_FILES)[number][0];
export interface PlacedConfig {
  file: ConfigFile;
  source: "backup" | "config-from" | "default";
  /** With source "config-from": the backup had one too, and this one took its place. */
  replaced?: boolean;
}

/**
 * Puts postgresql.conf, pg_hba.conf and pg_ident.conf in place and says
 * where each came from. The sidecar's backups carry them (backup-fetch has
 * written them into PGDATA), and so does a pg_basebackup for --skip-fetch.
 * A file in --config-from wins over the backup's; a file in neither gets
 * the safe default, as for an older stock WAL-E backup.
 */
export async function placeConfigFiles(pgdata: string, configFrom: string | undefined): Promise<PlacedConfig[]> {
  const placed: PlacedConfig[] = [];
  // --config-from PGDATA itself: its files are the backup's (and would be removed before being copied onto themselves).
  const from = configFrom && (await realpath(configFrom)) !== (await realpath(pgdata)) ? configFrom : undefined;
  for (const [file, fallback] of CONFIG_FILES) {
    const path = join(pgdata, file);
    const inBackup = (await lstat(path).catch(() => null)) !== null;
    const source = from ? join(from, file) : undefined;
    // stat, not lstat: a Kubernetes ConfigMap's files are symlinks (postgresql.conf -> ..data/postgresql.conf).
    if (source && (await stat(source).catch(() => null))?.isFile()) {
      // Removed first: copying onto a symlink from the backup would write through it, outside PGDATA.
      await rm(path, { force: true });
      await copyFile(source, path);
      await chmod(path, 0o600);
      placed.push({ file, source: "config-from", replaced: inBackup });
    } else if (inBackup) {
      placed.push({ file, source: "backup" });
    } else {
      await writeFile(path, fallback, { mode: 0o600 });
      placed.push({ file, source: "default" });
    }
  }
  return placed;
}

/** One line for what placeConfigFiles did with a file. */
export function describePlaced(placed: PlacedConfig, configFrom: string | undefined): string {
  if (placed.source === "backup") return `${placed.file}: from the backup`;
  if (placed.source === "config-from")
    return `${placed.file}: from --config-from ${configFrom}${placed.replaced ? ", in place of the backup's" : ""}`;
  return `${placed.file}: the default (the backup holds none: stock WAL-E leaves it out)`;
}

/**
 * The value of each setting in `names` as PostgreSQL would read it from
 * PGDATA's postgresql.conf and then postgresql.auto.conf: the last
 * assignment wins, names are case-blind, `name = value` or `name value`,
 * quoted values unquoted. include directives are not followed (a setting
 * held only in an included file is not seen).
 */
export async function readSettings(pgdata: string, names: string[]): Promise<Map<string, string>> {
  const settings = new Map<string, string>();
  const line = /^\s*([A-Za-z_][\w.]*)\s*(?:=\s*|\s+)('(?:[^'\\]|''|\\.)*'|[^\s#']+)?/;
  for (const file of ["postgresql.conf", "postgresql.auto.conf"]) {
    const text = await readFile(join(pgdata, file), "utf8").catch(() => "");
    for (const row of text.split("\n")) {
      const match = line.exec(row);
      const name = match?.[1]?.toLowerCase();
      if (!match || !name || !names.includes(name)) continue;
      const raw = match[2] ?? "";
      const value = raw.startsWith("'") ? raw.slice(1, -1).replace(/''/g, "'").replace(/\\(.)/g, "$1") : raw;
      settings.set(name, value);
    }
  }
  return settings;
}

/** archive_mode's values that mean on (its enum table, guc_tables.c, matched whole and case-blind). */
const ARCHIVE_ON = ["on", "always", "true", "yes", "1"];

/**
 * Where the restored configuration would archive once the server promotes,
 * or null when it would not: archive_mode on (or always) with an
 * archive_command, or (15 and later) an archive_library.
 */
export async function archivingLeftOn(pgdata: string): Promise<string | null> {
  const settings = await readSettings(pgdata, ["archive_mode", "archive_command", "archive_library"]);
  if (!ARCHIVE_ON.includes((settings.get("archive_mode") ?? "off").toLowerCase())) return null;
  const command = settings.get("archive_command") ?? "";
  const library = settings.get("archive_library") ?? "";
  if (command) return `archive_command = ${quote(command)}`;
  return library ? `archive_library = ${quote(library)}` : null;
}

/** What `restore --no-archive` appends to postgresql.auto.conf: the last setting read wins. */
export const NO_ARCHIVE =
  "\n# Written by wale-sidecar restore --no-archive: this copy archives nothing.\narchive_mode = off\n";

export async function writeNoArchive(pgdata: string): Promise<void> {
  await writeFile(join(pgdata, "postgresql.auto.conf"), NO_ARCHIVE, { flag: "a", mode: 0o600 });
}

/**
 * Written into PGDATA before backup-fetch and removed once the restore is
 * complete. A PGDATA that holds it is a restore cut short (a killed pod):
 * it has PG_VERSION, but PostgreSQL must never start on it.
 */
export const INCOMPLETE_MARKER = "wale-sidecar-restore.incomplete";

export type PgdataState =
  | { kind: "missing" }
  | { kind: "empty" }
  | { kind: "not-empty"; entries: number }
  | { kind: "not-a-directory" };

export async function pgdataState(pgdata: string): Promise<PgdataState> {
  const stat = await lstat(pgdata).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return null;
    throw error;
  });
  if (!stat) return { kind: "missing" };
  if (!stat.isDirectory()) return { kind: "not-a-directory" };
  const entries = (await readdir(pgdata)).length;
  return entries === 0 ? { kind: "empty" } : { kind: "not-empty", entries };
}

/**
 * The pid in PGDATA/postmaster.pid (its first line) when that process is
 * alive, or null: no file, no pid, or a pid that is gone (a crash leaves
 * the file behind). As WAL-E's backup-fetch refuses, a restore refuses a
 * PGDATA whose postmaster runs. (In a pod, a postmaster in another PID
 * namespace is not seen: stop the database container first.)
 */
export async function livePostmaster(pgdata: string): Promise<number | null> {
  const text = await readFile(join(pgdata, "postmaster.pid"), "utf8").catch(() => "");
  const pid = Number(/^\s*(\d+)\s*$/m.exec(text.split("\n")[0] ?? "")?.[1]);
  return pid > 1 && isAlive(pid) ? pid : null;
}

/** Where --force moves an old PGDATA: beside it, named for the time, never over anything. */
export async function asideName(pgdata: string, now: Date): Promise<string> {
  const stamp = now
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d+Z$/, "Z");
  for (let n = 0; ; n++) {
    const candidate = `${pgdata}.old-${stamp}${n ? `-${n}` : ""}`;
    if ((await pgdataState(candidate)).kind === "missing") return candidate;
  }
}

export async function moveAside(pgdata: string, to: string): Promise<void> {
  try {
    await rename(pgdata, to);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EBUSY" || code === "EXDEV" || code === "EACCES" || code === "EPERM") {
      throw new Error(
        `cannot move ${pgdata} aside to ${to} (${code}). If PGDATA is a mount point, make PGDATA a subdirectory of the volume (e.g. <mount>/pgdata).`,
      );
    }
    throw error;
  }
}

export async function writeRecoveryFiles(pgdata: string, files: RecoveryFiles): Promise<void> {
  const path = join(pgdata, files.settings.file);
  await writeFile(path, files.settings.text, { flag: files.settings.append ? "a" : "w", mode: 0o600 });
  if (files.signal) await writeFile(join(pgdata, files.signal), "", { mode: 0o600 });
}

/** Gives everything in PGDATA to `owner` (when run as root); symlinks themselves, not their targets. */
export async function chownTree(path: string, owner: { uid: number; gid: number }): Promise<void> {
  await lchown(path, owner.uid, owner.gid);
  const stat = await lstat(path);
  if (!stat.isDirectory()) return;
  for (const entry of await readdir(path)) await chownTree(join(path, entry), owner);
}

export async function makePgdata(pgdata: string): Promise<void> {
  await mkdir(pgdata, { recursive: true, mode: 0o700 });
  await chmod(pgdata, 0o700);
}

export const lockDown = (pgdata: string) => chmod(pgdata, 0o700);

/**
 * What a base backup's backup_label starts with, on every version WAL-E
 * and pg_basebackup serve (9.x to 18).
 */
const LABEL_START = "START WAL LOCATION:";

/**
 * Whether PGDATA holds the base backup's backup_label. Without it
 * PostgreSQL takes the checkpoint in pg_control, which is later than the
 * backup's start, for its starting point, and "recovers" a copy whose
 * files were changing while they were copied: silently corrupt.
 * WAL-E's backup-fetch exits 0 with whatever partitions it listed, and the
 * label travels in one of them: the last of a sidecar backup; stock WAL-E's
 * exclusive backups (up to 14) tar it from PGDATA with the rest.
 */
export async function hasBackupLabel(pgdata: string): Promise<boolean> {
  const text = await readFile(join(pgdata, "backup_label"), "utf8").catch(() => "");
  return text.startsWith(LABEL_START);
}
