/**
 * The compiled sidecar as PostgreSQL meets it: started as the database user
 * on 127.0.0.1, its log read back, under strace when a test looks at its
 * fsyncs; PostgreSQL archiving through it with the README's wget line; and
 * the restore side of restore_command.
 */
import { mkdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { restoreCommand } from "../../src/restore/steps.ts";
import { bareDataDir, type Postgres, type PostgresOptions, startPostgres } from "./postgres.ts";
import { asDbUser, freePort, run, running, type Scope, script } from "./process.ts";
import type { Store } from "./stores.ts";
import { type Major, TOOLS } from "./tools.ts";
import { waitFor } from "./wait.ts";

/** archive_command through the sidecar with the real wget, as the README shows it. */
export const archiveThrough = (sidecarUrl: string) => `archive_command = 'wget -q -O - ${sidecarUrl}/wal-push/%f'`;
/** restore_command through a sidecar's /wal-fetch, as `wale-sidecar restore --via` writes it. */
export const restoreThrough = (sidecarUrl: string) =>
  `restore_command = '${restoreCommand({ via: sidecarUrl, stream: false })}'`;

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
  const synced = () => succeededSyncs(readFileSync(trace, "utf8"));
  return { sidecar, synced };
}

/**
 * The successful calls in a `strace -f -y` log, in the order they ended.
 * A call that another thread's call interrupts is split over two lines,
 * `<pid> fsync(23</path> <unfinished ...>` and, later,
 * `<pid> <... fsync resumed>) = 0`: joined by pid.
 */
export function succeededSyncs(log: string): { call: string; path: string }[] {
  const pending = new Map<string, { call: string; path: string }>();
  const calls: { call: string; path: string }[] = [];
  for (const line of log.split("\n")) {
    const whole = /^(\d+) +(fsync|fdatasync|syncfs)\(\d+<([^>]*)>\)\s+= 0/.exec(line);
    const begun = /^(\d+) +(fsync|fdatasync|syncfs)\(\d+<([^>]*)> <unfinished \.\.\.>$/.exec(line);
    const resumed = /^(\d+) +<\.\.\. (fsync|fdatasync|syncfs) resumed>\)\s+= 0/.exec(line);
    if (whole) calls.push({ call: whole[2] as string, path: whole[3] as string });
    else if (begun) pending.set(begun[1] as string, { call: begun[2] as string, path: begun[3] as string });
    else if (resumed) {
      const call = pending.get(resumed[1] as string);
      pending.delete(resumed[1] as string);
      if (call) calls.push(call);
    } else if (/^(\d+) +<\.\.\. /.test(line)) pending.delete(line.split(" ")[0] as string);
  }
  return calls;
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
 * something else there; startArchivingSource starts the sidecar too.
 */
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
  ...store.env,
  PGHOST: "127.0.0.1",
  PGPORT: String(pg.port),
  PGUSER: "postgres",
});

/**
 * A source database archiving through its own sidecar into `store`: every
 * archiving test starts this way. The sidecar reaches the database through
 * the PG* variables, so it can take base backups (`env` is added to the
 * sidecar's environment, which is returned to start it again; `command`
 * runs it, as for startSidecar).
 */
export async function startArchivingSource(
  scope: Scope,
  store: Store,
  version: Major,
  options: { checksums?: boolean; conf?: string[]; env?: Record<string, string>; command?: string[] } = {},
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
  const sidecar = await startSidecar(scope, env, port, options.command);
  return { source, sidecar, url, port, env };
}

/**
 * The restore side without PostgreSQL: a PGDATA with pg_wal, a sidecar for
 * it (no prefetch), and `restore(name)`, which runs restore_command as
 * `restore --via` writes it, as PostgreSQL would: %f and %p replaced,
 * through sh with the real wget, in PGDATA (sleep a no-op: retries take no
 * time). It resolves with the exit code.
 */
export async function startRestoreSide(scope: Scope, env: Record<string, string>) {
  const { pgdata } = await bareDataDir(scope);
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
