/**
 * The database, as check reaches it: psql, as backup-push does (WAL-E 1.1's
 * own client, and src/workers/backup.py's): PGHOST, PGPORT, PGUSER,
 * PGPASSWORD, .pgpass and every other libpq setting, the database of
 * PGDATABASE (else `postgres`), a connect timeout and TCP keepalives. One
 * psql per query, argv only; its session shows as `wale-sidecar check`.
 */
import type { WaleRunner } from "../wale/runner.ts";
import { type ArchiverStats, Finding, type ServerSettings } from "./diagnose.ts";

/** A field separator psql will not find in any value asked for. */
const SEP = "\x1f";
const KEEPALIVES = "keepalives=1 keepalives_idle=30 keepalives_interval=10 keepalives_count=3";
/** How long one psql may take, connection included (libpq's connect_timeout is 10 s). */
const QUERY_MS = 30_000;

/** psql's -d, as src/workers/backup.py builds it: a PGDATABASE that is itself a conninfo or URI is libpq's. */
export function conninfo(env: Record<string, string>): string {
  const database = env.PGDATABASE || "postgres";
  if (database.includes("=") || /^postgres(ql)?:\/\//.test(database)) return database;
  const words = [`dbname='${database.replaceAll("\\", "\\\\").replaceAll("'", "\\'")}'`, KEEPALIVES];
  if (!env.PGCONNECT_TIMEOUT) words.push("connect_timeout=10");
  return words.join(" ");
}

/** `psql -X -A -t -q --no-password -v ON_ERROR_STOP=1 -F <US> -d <conninfo> -c <sql>...` */
export const psqlArgv = (env: Record<string, string>, statements: string[]) => [
  "psql",
  "-X",
  "-A",
  "-t",
  "-q",
  "--no-password",
  "-v",
  "ON_ERROR_STOP=1",
  "-F",
  SEP,
  "-d",
  conninfo(env),
  ...statements.flatMap((sql) => ["-c", sql]),
];

/** Where libpq connects, for a message: the PG* variables that say so. */
export const whereTo = (env: Record<string, string>) =>
  ["PGHOST", "PGPORT", "PGUSER", "PGDATABASE"]
    .filter((name) => env[name])
    .map((name) => `${name}=${env[name]}`)
    .join(" ") || "libpq's defaults";

/** psql's first line of complaint: "psql: error: connection to server ... failed: ..." or "ERROR:  ...". */
export function psqlError(stderr: string, exitCode: number): string {
  const line = stderr
    .split("\n")
    .map((l) => l.trim())
    .find((l) => l !== "");
  return line ?? `psql exited with code ${exitCode}`;
}

export class Psql {
  private readonly env: Record<string, string>;

  constructor(
    private readonly runner: WaleRunner,
    env: Record<string, string>,
  ) {
    // Named, so that an operator can find it in pg_stat_activity.
    this.env = { ...env, PGAPPNAME: "wale-sidecar check" };
  }

  /** The rows the last statement printed, each split into its fields; a Finding in PostgreSQL's words otherwise. */
  async rows(statements: string[], what: string): Promise<string[][]> {
    const result = await this.runner.run(psqlArgv(this.env, statements), { timeoutMs: QUERY_MS, env: this.env });
    if (result.timedOut) throw new Finding(`${what}: psql did not answer within ${QUERY_MS / 1000} s`);
    if (result.exitCode === 127) throw new Finding(`${what}: ${result.stderr.trim()} (psql must be on PATH)`);
    if (result.exitCode !== 0) throw new Finding(`${what}: ${psqlError(result.stderr, result.exitCode)}`);
    return result.stdout
      .split("\n")
      .filter((line) => line !== "")
      .map((line) => line.split(SEP));
  }

  /** The settings that decide whether the server archives at all, and its clock. */
  async settings(): Promise<ServerSettings> {
    const [row] = await this.rows(
      [
        `SELECT current_setting('server_version'), current_setting('archive_mode'),
          (SELECT pending_restart FROM pg_settings WHERE name = 'archive_mode'),
          current_setting('archive_command'), coalesce(current_setting('archive_library', true), ''),
          pg_is_in_recovery(), (SELECT setting FROM pg_settings WHERE name = 'wal_segment_size')`,
      ],
      `cannot ask PostgreSQL as backup-push does (${whereTo(this.env)})`,
    );
    const [version, mode, pending, command, library, recovery, segment] = row ?? [];
    return {
      version: version ?? "?",
      archiveMode: mode ?? "?",
      archiveModePending: pending === "t",
      archiveCommand: command ?? "",
      archiveLibrary: library ?? "",
      inRecovery: recovery === "t",
      segmentBytes: Number(segment),
    };
  }

  /**
   * Writes a WAL record, then switches: pg_switch_wal() on a segment with
   * nothing written since the last switch switches nothing, and names the
   * segment before (PostgreSQL 14 to 18). pg_logical_emit_message writes at
   * wal_level replica too. The segment it closed, and the server's clock then.
   */
  async switchWal(): Promise<{ segment: string; at: number }> {
    const rows = await this.rows(
      [
        "SELECT pg_logical_emit_message(false, 'wale-sidecar check', '')",
        "SELECT pg_walfile_name(pg_switch_wal()), extract(epoch FROM clock_timestamp())",
      ],
      `PostgreSQL did not switch WAL for ${this.env.PGUSER || "this role"} (pg_switch_wal() needs a superuser, or GRANT EXECUTE ON FUNCTION pg_switch_wal() TO the role)`,
    );
    const [segment = "", at] = rows.at(-1) ?? [];
    if (!/^[0-9A-F]{24}$/.test(segment)) throw new Finding(`pg_switch_wal() named no segment: ${segment.slice(0, 80)}`);
    return { segment, at: Number(at) };
  }

  async archiver(): Promise<ArchiverStats> {
    const [row] = await this.rows(
      [
        `SELECT coalesce(last_archived_wal, ''), coalesce(extract(epoch FROM last_archived_time)::text, ''),
          coalesce(last_failed_wal, ''), coalesce(extract(epoch FROM last_failed_time)::text, '')
         FROM pg_stat_archiver`,
      ],
      "cannot read pg_stat_archiver",
    );
    const [archived = "", archivedAt = "", failed = "", failedAt = ""] = row ?? [];
    const time = (text: string) => (text === "" ? null : Number(text));
    return {
      lastArchivedWal: archived || null,
      lastArchivedAt: time(archivedAt),
      lastFailedWal: failed || null,
      lastFailedAt: time(failedAt),
    };
  }
}
