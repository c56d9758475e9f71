/**
 * Configuration: read once from the environment at start, validated with
 * TypeBox, and passed down as one typed object. Nothing else reads the
 * environment.
 */
import { type Static, Type as T } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import { ConfigError } from "./errors";

const AbsolutePath = (def?: string) =>
  T.String({ pattern: "^/", description: "an absolute path", ...(def ? { default: def } : {}) });
const Flags = (def: string, description: string) => T.String({ default: def, description });

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
  WALE_FLAGS: Flags("--terse", "WAL-E's global flags"),
  WALE_PUSH_FLAGS: Flags("", "flags for wal-push"),
  WALE_FETCH_FLAGS: Flags("-p=0", "flags for wal-fetch"),
  WALE_BACKUP_PUSH_FLAGS: Flags("", "flags for backup-push"),
  WALE_SPOOL_DIR: AbsolutePath("/tmp/wale-sidecar-spool"),
  WALE_PREFETCH: T.Integer({ default: 8, minimum: 0, maximum: 32, description: "a number of segments from 0 to 32" }),
});
type Env = Static<typeof EnvSchema>;

export interface Config {
  listen: { hostname: string; port: number };
  pgdata: string;
  pgwal: string;
  wale: {
    bin: string;
    flags: string[];
    pushFlags: string[];
    fetchFlags: string[];
    backupPushFlags: string[];
    /** The environment every WAL-E child gets. */
    env: Record<string, string>;
  };
  /** Where fetched WAL lands before it moves to its destination, and where the next segments are prefetched. */
  spool: { dir: string; prefetch: number };
  /** Values that must never reach a log line or a response body. */
  secrets: string[];
}

/** Names whose values are secret. */
export const SECRET_NAME = /SECRET|KEY|TOKEN|PASSWORD|PASSPHRASE|CREDENTIAL/i;

/** Parses the environment, or throws a ConfigError naming the first bad variable. */
export function parseConfig(environment: Record<string, string | undefined>): Config {
  const env = readEnv(environment);
  const pgdata = trimSlash(env.PGDATA);
  const pgwal = trimSlash(env.PGWAL ?? `${pgdata}/pg_wal`);
  const spoolDir = trimSlash(env.WALE_SPOOL_DIR);
  // The sidecar empties its spool at start: a spool inside the database would lose data.
  for (const [name, root] of [["PGDATA", pgdata], ["PGWAL", pgwal]] as const) {
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
      flags: splitFlags(env.WALE_FLAGS),
      pushFlags: splitFlags(env.WALE_PUSH_FLAGS),
      fetchFlags: splitFlags(env.WALE_FETCH_FLAGS),
      backupPushFlags: splitFlags(env.WALE_BACKUP_PUSH_FLAGS),
      env: waleEnv(environment),
    },
    spool: { dir: spoolDir, prefetch: env.WALE_PREFETCH },
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
  return candidate as Env;
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
