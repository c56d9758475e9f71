/**
 * Real PostgreSQL for the tests: a server of any tested major on loopback,
 * its rows' checksums, a pgbench write load, and WAL segment names.
 */
import { appendFileSync } from "node:fs";
import { join } from "node:path";
import { asDbUser, freePort, run, type Scope } from "./process.ts";
import { type Major, TOOLS } from "./tools.ts";
import { waitFor } from "./wait.ts";

export interface Postgres {
  version: Major;
  port: number;
  pgdata: string;
  /** Runs SQL through psql and returns its unaligned, tuples-only output. */
  sql(query: string): Promise<string>;
  /** Switches to a new WAL segment after writing to it; returns the name of the segment it closed. */
  switchWal(): Promise<string>;
  /** Stops it: "immediate" by default; "fast" shuts down cleanly (pg_checksums needs that). */
  stop(mode?: "immediate" | "fast"): Promise<void>;
  log(): Promise<string>;
}

export interface PostgresOptions {
  version: Major;
  /** postgresql.conf lines appended after the defaults. */
  conf?: string[];
  /** Start on an existing data directory (a restore) instead of running initdb. */
  pgdata?: string;
  /** Added to the server's environment (restore_command inherits it). */
  env?: Record<string, string>;
  /** initdb --data-checksums (18 has them on by default). */
  checksums?: boolean;
  /** The user that runs it, "uid:gid" (default: the database user). */
  owner?: string;
}

/** How a client tool (psql, pgbench, pg_basebackup) reaches the server on `port`: loopback, as postgres. */
export const connectTo = (port: number) => ["-h", "127.0.0.1", "-p", String(port), "-U", "postgres"];

export async function startPostgres(scope: Scope, options: PostgresOptions): Promise<Postgres> {
  const bin = TOOLS.pgBin[options.version];
  const dir = scope.tempDir(`pg${options.version}`, options.owner);
  const pgdata = options.pgdata ?? join(dir, "data");
  if (!options.pgdata) {
    await run(
      asDbUser(
        [
          join(bin, "initdb"),
          "-D",
          pgdata,
          "-U",
          "postgres",
          "--auth=trust",
          "-E",
          "UTF8",
          "--no-sync",
          ...(options.checksums ? ["--data-checksums"] : []),
        ],
        options.owner,
      ),
    );
  }
  const port = freePort();
  const conf = [
    `listen_addresses = '127.0.0.1'`,
    `port = ${port}`,
    `unix_socket_directories = '${dir}'`,
    "wal_level = replica",
    "fsync = off",
    "max_wal_size = 1GB",
    ...(options.conf ?? []),
  ];
  // Appended, so these win over anything earlier in the file (a restored
  // backup brings its source's port and archive settings).
  appendFileSync(join(pgdata, "postgresql.conf"), `\n${conf.join("\n")}\n`);

  const logFile = join(dir, "postgres.log");
  const env = options.env ? ({ ...process.env, ...options.env } as Record<string, string>) : undefined;
  const pgCtl = (...args: string[]) =>
    run(asDbUser([join(bin, "pg_ctl"), "-D", pgdata, ...args], options.owner), { check: false, env });
  const started = await pgCtl("-l", logFile, "-w", "-t", "120", "start");
  const stop = async (mode: "immediate" | "fast" = "immediate") => {
    await pgCtl("-m", mode, "-w", "stop");
  };
  scope.defer(stop);
  const log = async () => ((await Bun.file(logFile).exists()) ? await Bun.file(logFile).text() : "");
  if (started.exitCode !== 0)
    throw new Error(`PostgreSQL ${options.version} did not start:\n${started.stderr}\n${await log()}`);

  const sql = async (query: string) =>
    (
      await run([TOOLS.psql, ...connectTo(port), "-d", "postgres", "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", query])
    ).stdout.trim();
  return {
    version: options.version,
    port,
    pgdata,
    sql,
    async switchWal() {
      // A switch on an empty segment does nothing; write first.
      await sql("CREATE TABLE IF NOT EXISTS wal_filler (x int); INSERT INTO wal_filler VALUES (1);");
      return sql("SELECT pg_walfile_name(pg_switch_wal())");
    },
    stop,
    log,
  };
}

/**
 * A data directory with no server on it, for a sidecar to push from or fetch
 * into: pg_wal/archive_status, made by the database user (WAL-E writes there as it).
 */
export async function bareDataDir(scope: Scope) {
  const pgdata = scope.tempDir("pgdata");
  const pgwal = join(pgdata, "pg_wal");
  await run(asDbUser(["mkdir", "-p", join(pgwal, "archive_status")]));
  return { pgdata, pgwal };
}

/** Resolves once `pg` has left recovery (within two minutes). */
export const recoveryEnded = (pg: Postgres) =>
  waitFor("recovery to finish", async () => (await pg.sql("SELECT pg_is_in_recovery()")) === "f", 120_000);

/** `rows:md5` of a table's rows in a stable order: equal only if the contents are equal. */
export const checksum = (pg: Postgres, table: string) =>
  pg.sql(`SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '') FROM ${table} t`);

/** `table=rows:md5` for every table in the public schema, one a line, sorted by name. */
export async function checksumAll(pg: Postgres): Promise<string> {
  const tables = (await pg.sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")).split("\n");
  const sums = await Promise.all(tables.filter(Boolean).map(async (t) => `${t}=${await checksum(pg, t)}`));
  return sums.join("\n");
}

export interface WriteLoad {
  /** Stops the clients; committed work stays. */
  stop(): Promise<void>;
}

/** A pgbench write load (initialised at `scale` first) running until stopped. */
export async function startWriteLoad(scope: Scope, pg: Postgres, { scale = 1, clients = 2 } = {}): Promise<WriteLoad> {
  const connect = connectTo(pg.port);
  await run([TOOLS.pgbench, ...connect, "-i", "-q", "-s", String(scale), "postgres"]);
  const proc = Bun.spawn([TOOLS.pgbench, ...connect, "-n", "-c", String(clients), "-T", "3600", "postgres"], {
    stdin: "ignore",
    stdout: "ignore",
    stderr: "ignore",
  });
  const stop = async () => {
    proc.kill("SIGKILL");
    await proc.exited;
  };
  scope.defer(stop);
  return { stop };
}

/** The backup worker's session, as pg_stat_activity shows it (src/workers/backup.py names it). */
export const BACKUP_SESSIONS = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'wale-sidecar backup'";

// ------------------------------------------------------------ WAL names

/** The segment after `name`, with 16 MB segments (256 to a log id). */
export function nextSegment(name: string): string {
  const tli = name.slice(0, 8);
  let log = Number.parseInt(name.slice(8, 16), 16);
  let seg = Number.parseInt(name.slice(16, 24), 16) + 1;
  if (seg > 0xff) {
    seg = 0;
    log += 1;
  }
  const hex = (n: number) => n.toString(16).toUpperCase().padStart(8, "0");
  return `${tli}${hex(log)}${hex(seg)}`;
}

/** Every segment from `first` to `last`, inclusive. */
export function segmentRange(first: string, last: string): string[] {
  const out = [first];
  while (out[out.length - 1] !== last) {
    out.push(nextSegment(out[out.length - 1] as string));
    if (out.length > 100_000) throw new Error(`${last} does not follow ${first}`);
  }
  return out;
}
