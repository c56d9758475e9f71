/**
 * Configuration: read once from the environment at start, validated with
 * TypeBox, and passed down as one typed object. Nothing else reads the
 * environment.
 */

import { createHash } from "node:crypto";
import { type Static, Type as T } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import { Cron } from "croner";
import { ConfigError, messageOf } from "../errors.ts";
import { type NoStore, parseStore, STORAGE_VARIABLES, type Store } from "./store.ts";

// No control characters: paths travel in the prefetch worker's tab-separated job lines.
const AbsolutePath = (def?: string) =>
  T.String({
    pattern: "^/[^\\u0000-\\u001f\\u007f]*$",
    description: "an absolute path without control characters",
    ...(def ? { default: def } : {}),
  });
const Flags = (def: string, description: string) => T.String({ default: def, description });
const Seconds = (def: number) =>
  T.Integer({ default: def, minimum: 0, maximum: 604_800, description: "a whole number of seconds (0 for no limit)" });

/** The variables the sidecar itself reads. Every other one goes to WAL-E untouched. */
export const EnvSchema = T.Object({
  WALE_LISTEN_HOST: T.String({
    default: "0.0.0.0",
    pattern: "^[0-9A-Za-z.:-]+$",
    description: "the address to listen on (a host name or an IP address)",
  }),
  WALE_LISTEN_PORT: T.Integer({ default: 80, minimum: 1, maximum: 65535, description: "a TCP port from 1 to 65535" }),
  PGDATA: AbsolutePath("/var/lib/postgresql/data"),
  PGWAL: T.Optional(AbsolutePath()),
  WALE_BIN: T.String({ default: "wal-e", minLength: 1, description: "the WAL-E executable, on PATH or as a path" }),
  WALE_PYTHON: T.Optional(AbsolutePath()),
  WALE_FLAGS: Flags("--terse", "WAL-E's global flags"),
  WALE_PUSH_FLAGS: Flags("", "flags for wal-push"),
  WALE_FETCH_FLAGS: Flags("-p=0", "flags for wal-fetch"),
  WALE_BACKUP_PUSH_FLAGS: Flags("", "flags for backup-push"),
  WALE_PUSH_TIMEOUT: Seconds(600),
  WALE_FETCH_TIMEOUT: Seconds(600),
  WALE_BACKUP_TIMEOUT: Seconds(0),
  WALE_SHUTDOWN_GRACE: T.Integer({ default: 25, minimum: 0, maximum: 3600, description: "a whole number of seconds" }),
  WALE_BACKUP_SCHEDULE: T.Optional(T.String({ description: "a cron expression (5 or 6 fields)" })),
  WALE_VERIFY_SCHEDULE: T.Optional(T.String({ description: "a cron expression (5 or 6 fields)" })),
  WALE_BACKUP_RETAIN: T.Optional(T.Integer({ minimum: 1, description: "a number of backups, 1 or more" })),
  WALE_SIDECAR_TOKEN: T.Optional(
    T.String({
      minLength: 16,
      pattern: "^[\\x21-\\x7e]+$",
      description: "at least 16 printable characters, no spaces",
    }),
  ),
  WALE_MAX_CONCURRENCY: T.Integer({
    default: 8,
    minimum: 1,
    maximum: 1024,
    description: "a number of WAL-E processes, 1 or more",
  }),
  WALE_MAX_QUEUE: T.Integer({
    default: 64,
    minimum: 0,
    maximum: 100_000,
    description: "a number of waiting requests, 0 or more",
  }),
  WALE_LOG_FORMAT: T.Union([T.Literal("json"), T.Literal("text")], { default: "json", description: "json or text" }),
  WALE_SPOOL_DIR: T.Optional(AbsolutePath()),
  WALE_PREFETCH: T.Integer({ default: 8, minimum: 0, maximum: 32, description: "a number of segments from 0 to 32" }),
  WALE_HISTORY_CHECK: T.Union([T.Literal("on"), T.Literal("off")], { default: "on", description: "on or off" }),
});
type Env = Static<typeof EnvSchema>;

export interface Config {
  listen: { hostname: string; port: number };
  pgdata: string;
  pgwal: string;
  wale: {
    bin: string;
    /** The Python that runs WAL-E, for its Python workers, when WALE_BIN is a wrapper (see walePython). */
    python?: string;
    flags: string[];
    pushFlags: string[];
    fetchFlags: string[];
    backupPushFlags: string[];
    /** The environment every WAL-E child gets. */
    env: Record<string, string>;
  };
  /**
   * The store WAL-E archives to, from its WALE_*_PREFIX variables (after
   * WALE_S3_PREFIX is derived from WALE_S3_BUCKET): src/config/store.ts.
   */
  store: Store | NoStore;
  /** Time limits in ms; 0 means none. On expiry WAL-E is killed and the answer is 504. */
  timeouts: { push: number; fetch: number; backup: number };
  /** How long in-flight work may finish after SIGTERM, in ms. */
  shutdownGraceMs: number;
  backups: { schedule?: string; retain?: number };
  /** Verifies on a schedule, besides after every backup (src/archive/verifier.ts). */
  verify: { schedule?: string };
  logFormat: "json" | "text";
  /** With a token, every route but /ping and /healthz needs `Authorization: Bearer <token>`. */
  token?: string;
  limits: { concurrency: number; queue: number };
  /** Values that must never reach a log line or a response body. */
  /** Where fetched WAL lands before it moves to its destination, and where the next segments are prefetched. */
  spool: { dir: string; prefetch: number };
  /**
   * Whether a .history push first reads the archived copy, so as never to
   * overwrite it with other bytes (WaleArchive.archivedHistory). Off is for
   * write-only archivers, which cannot read it: then nothing guards the history.
   */
  historyCheck: boolean;
  secrets: string[];
}

/**
 * The variables WAL-E 1.1.1 and the programs it runs read, which the sidecar
 * passes through unchanged: exact names, or prefixes ending in "*". The
 * sidecar reads WALE_S3_BUCKET and WALE_S3_PATH only to derive WALE_S3_PREFIX.
 * `wale-sidecar config` shows these; the examples test accepts them.
 */
export const WALE_VARIABLES = [
  "WALE_S3_PREFIX",
  "WALE_S3_ENDPOINT",
  "WALE_S3_BUCKET",
  "WALE_S3_PATH",
  "WALE_FILE_PREFIX",
  "WALE_GS_PREFIX",
  "WALE_WABS_PREFIX",
  "WALE_SWIFT_PREFIX",
  "WALE_GPG_KEY_ID",
  "WALE_LOG_DESTINATION",
  "WALE_SYSLOG_FACILITY",
  "AWS_*", // boto: keys, AWS_REGION, AWS_INSTANCE_PROFILE
  "GS_*",
  "GOOGLE_APPLICATION_CREDENTIALS",
  "WABS_*",
  "SWIFT_*",
  "PG*", // psql, which backup-push runs: PGHOST, PGPORT, PGUSER, PGPASSWORD...
] as const;

/** Is `name` one of WAL-E's variables? */
export const isWaleVariable = (name: string) =>
  WALE_VARIABLES.some((v) => (v.endsWith("*") ? name.startsWith(v.slice(0, -1)) : name === v));

/** Names whose values are secret: credentials of every WAL-E backend, and the token. */
export const SECRET_NAME = /SECRET|KEY|TOKEN|PASSWORD|PASSPHRASE|CREDENTIAL|^GS_|^WABS_/i;

/**
 * A spool of this database's and this archive's own. Prefetched files are
 * known by segment name alone, so two sidecars sharing one spool (two
 * databases on one host) could hand each other's WAL to the wrong recovery.
 */
function defaultSpool(pgdata: string, store: Store | NoStore): string {
  // One field per variable, as before the store was parsed: the same spool as then.
  const values = STORAGE_VARIABLES.map((name) =>
    store.kind === "none" ? "" : name === store.variable ? store.prefix : "",
  );
  const identity = [pgdata, ...values].join("\0");
  return `/tmp/wale-sidecar-spool-${createHash("sha256").update(identity).digest("hex").slice(0, 12)}`;
}

/** Parses the environment, or throws a ConfigError naming the first bad variable. */
export function parseConfig(environment: Record<string, string | undefined>): Config {
  const env = readEnv(environment);
  const pgdata = trimSlash(env.PGDATA);
  const pgwal = trimSlash(env.PGWAL ?? `${pgdata}/pg_wal`);
  const waleEnvironment = waleEnv(environment);
  const store = parseStore(waleEnvironment);
  const spoolDir = trimSlash(env.WALE_SPOOL_DIR ?? defaultSpool(pgdata, store));
  // The sidecar empties its spool at start: a spool inside the database would lose data.
  for (const [name, root] of [
    ["PGDATA", pgdata],
    ["PGWAL", pgwal],
  ] as const) {
    if (spoolDir === root || spoolDir.startsWith(`${root}/`) || root.startsWith(`${spoolDir}/`)) {
      throw new ConfigError("WALE_SPOOL_DIR", `must be outside ${name} and not contain it (got "${spoolDir}")`);
    }
  }
  return {
    listen: { hostname: env.WALE_LISTEN_HOST, port: env.WALE_LISTEN_PORT },
    pgdata,
    pgwal,
    wale: {
      bin: env.WALE_BIN,
      python: env.WALE_PYTHON,
      flags: splitFlags(env.WALE_FLAGS),
      pushFlags: splitFlags(env.WALE_PUSH_FLAGS),
      fetchFlags: splitFlags(env.WALE_FETCH_FLAGS),
      backupPushFlags: splitFlags(env.WALE_BACKUP_PUSH_FLAGS),
      env: waleEnvironment,
    },
    store,
    timeouts: {
      push: env.WALE_PUSH_TIMEOUT * 1000,
      fetch: env.WALE_FETCH_TIMEOUT * 1000,
      backup: env.WALE_BACKUP_TIMEOUT * 1000,
    },
    shutdownGraceMs: env.WALE_SHUTDOWN_GRACE * 1000,
    backups: { schedule: env.WALE_BACKUP_SCHEDULE, retain: env.WALE_BACKUP_RETAIN },
    verify: { schedule: env.WALE_VERIFY_SCHEDULE },
    logFormat: env.WALE_LOG_FORMAT,
    token: env.WALE_SIDECAR_TOKEN,
    limits: { concurrency: env.WALE_MAX_CONCURRENCY, queue: env.WALE_MAX_QUEUE },
    spool: { dir: spoolDir, prefetch: env.WALE_PREFETCH },
    historyCheck: env.WALE_HISTORY_CHECK === "on",
    secrets: secretValues(environment),
  };
}

function readEnv(environment: Record<string, string | undefined>): Env {
  const raw: Record<string, unknown> = {};
  for (const key of Object.keys(EnvSchema.properties)) {
    const value = environment[key];
    // An empty variable means "unset" (compose files often write `PGWAL=`),
    // except for the flag lists, where empty means "no flags".
    if (value === undefined || (value === "" && !key.endsWith("FLAGS"))) continue;
    // Integers are converted only when they are plain digits: "80.5" or
    // "8e1" stay strings and fail the check below.
    const integer = (EnvSchema.properties[key as keyof Env] as { type?: string }).type === "integer";
    raw[key] = integer && /^[0-9]{1,9}$/.test(value) ? Number(value) : value;
  }
  const candidate = Value.Default(EnvSchema, { ...raw });
  const error = Value.Errors(EnvSchema, candidate).First();
  if (error) {
    const variable = error.path.replace(/^\//, "");
    const schema = EnvSchema.properties[variable as keyof Env] as { description?: string } | undefined;
    throw new ConfigError(variable, `must be ${schema?.description ?? "valid"} (got ${JSON.stringify(raw[variable])})`);
  }
  const env = candidate as Env;
  for (const variable of ["WALE_BACKUP_SCHEDULE", "WALE_VERIFY_SCHEDULE"] as const) {
    const pattern = env[variable];
    if (pattern === undefined) continue;
    const problem = cronProblem(pattern);
    if (problem)
      throw new ConfigError(variable, `must be a cron expression: ${problem} (got ${JSON.stringify(pattern)})`);
  }
  return env;
}

function cronProblem(pattern: string): string | null {
  try {
    new Cron(pattern, { paused: true }).stop();
    return null;
  } catch (error) {
    return messageOf(error);
  }
}

/**
 * The environment for WAL-E children: the sidecar's own, plus two defaults.
 */
function waleEnv(environment: Record<string, string | undefined>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(environment)) if (v !== undefined) env[k] = v;
  // Without this WAL-E logs to /dev/log, which containers lack, and prints a
  // traceback for every line it fails to log.
  env.WALE_LOG_DESTINATION ||= "stderr";
  // The original image's start script built the prefix from a bucket and a
  // path. Only do so when a bucket is given: a made-up S3 prefix next to a
  // WALE_FILE_PREFIX would make WAL-E refuse to run.
  if (!env.WALE_S3_PREFIX && env.WALE_S3_BUCKET) {
    env.WALE_S3_PREFIX = `s3://${env.WALE_S3_BUCKET}/${(env.WALE_S3_PATH ?? "").replace(/^\/+/, "")}`;
  }
  return env;
}

function secretValues(environment: Record<string, string | undefined>): string[] {
  return Object.entries(environment)
    .filter(([name, value]) => SECRET_NAME.test(name) && value !== undefined && value.length >= 4)
    .map(([, value]) => value as string);
}

/** Flags are separated by white space. There is no shell and no quoting. */
export function splitFlags(value: string): string[] {
  return value.split(/\s+/).filter(Boolean);
}

function trimSlash(path: string): string {
  return path.length > 1 ? path.replace(/\/+$/, "") : path;
}
