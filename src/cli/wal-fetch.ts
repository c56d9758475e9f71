import { rm, stat } from "node:fs/promises";
import { isAbsolute } from "node:path";
import { cwd } from "node:process";
import { judgeMiss, StoreCheck } from "../archive/not-in-archive.ts";
import type { Config } from "../config/config.ts";
import { messageOf } from "../errors.ts";
import { FETCH_RETRIES } from "../restore/steps.ts";
import type { Runtime } from "../runtime/types.ts";
import { checkWalName, type NameCheck } from "../wal/names.ts";
import { isDirectory } from "../wal/paths.ts";
import { walFetchArgv, walLogEnv } from "../wale/argv.ts";
import { lastLines, WaleRunner } from "../wale/runner.ts";
import { type Command, helpOrRefusal, loadConfig } from "./command.ts";

/** restore_command's exits: PostgreSQL reads 1 to 125 as "not in the archive", and aborts recovery above 125. */
export const FETCHED = 0;
export const NOT_IN_ARCHIVE = 1;
export const FAILED = 255;

export const walFetch: Command = {
  name: "wal-fetch",
  summary: "restore_command without a sidecar: WAL-E's wal-fetch, with exits PostgreSQL can trust",
  help: `Usage: wale-sidecar wal-fetch <file> <path>

restore_command = 'wale-sidecar wal-fetch %f %p' (what restore --direct
writes). Runs WAL-E itself, \`WALE_BIN [WALE_FLAGS but --terse] wal-fetch
[WALE_FETCH_FLAGS] <file> <path>\`, in the sidecar's environment, and exits
as PostgreSQL needs:
  0    <path> is there, not empty;
  1    the archive does not hold <file>, by the sidecar's rule: WAL-E said
       so of that very object, and the store shows it is the archive (on a
       file store its wal_005/ is there; elsewhere its WAL directory holds
       an object). PostgreSQL ends recovery here;
  255  anything else (WAL-E failing, a store not there, bad arguments or
       configuration), failures after ${FETCH_RETRIES.tries} tries ${FETCH_RETRIES.delayMs / 1000} s apart: PostgreSQL stops
       instead of ending recovery early, and a restart resumes it.
WAL-E's own wal-fetch exits 1 for a failure and for a miss alike, which
PostgreSQL takes for the end of the archive. WAL-E's output goes to stderr.
SIGTERM or SIGINT stops WAL-E too.
`,
  async run(runtime, args) {
    const early = helpOrRefusal(runtime, this, args);
    if (early !== undefined) return early;
    const [file = "", path = "", ...extra] = args;
    const name = checkWalName(file);
    const refusal = refusalOf(args, extra, name, path);
    // Never 2 (nor 1): PostgreSQL would take a wrong restore_command for the end of the archive.
    if (refusal !== null || !name.ok) {
      runtime.stderr(`wale-sidecar wal-fetch: ${refusal ?? "bad arguments"}\n\n${this.help}`);
      return FAILED;
    }
    try {
      return await fetchWithConfig(runtime, name.name, path);
    } catch (error) {
      // Whatever went wrong, not a "missing": a thrown error would exit 1.
      runtime.stderr(`wale-sidecar wal-fetch: ${messageOf(error)}\n`);
      return FAILED;
    }
  },
};

/** What is wrong with the arguments, or null. */
function refusalOf(args: string[], extra: string[], name: NameCheck, path: string): string | null {
  if (args.length < 2) return "needs <file> and <path>";
  if (extra.length > 0) return `unexpected argument "${(extra[0] as string).slice(0, 80)}"`;
  if (!name.ok) return name.reason;
  if (path === "" || path.includes("\u0000")) return "<path> must be a file path";
  return null;
}

async function fetchWithConfig(runtime: Runtime, name: string, path: string): Promise<number> {
  const config = loadConfig(runtime, recoveryEnv(runtime.env()));
  if (!config) return FAILED;
  const runner = new WaleRunner(runtime, config.wale);
  // PostgreSQL's shutdown: WAL-E runs in a process group of its own, which the signal does not reach.
  for (const [signal, code] of [
    ["SIGTERM", 143],
    ["SIGINT", 130],
  ] as const) {
    runtime.onSignal(signal, () => void runner.close().finally(() => runtime.exit(code)));
  }
  try {
    return await fetchForRecovery(runtime, runner, config, name, path);
  } finally {
    await runner.close();
  }
}

/**
 * The environment, with PGDATA absolute. `pg_ctl -D data` hands the server
 * (and so restore_command) PGDATA=data, relative, which the configuration
 * refuses; restore_command runs in the data directory itself.
 */
const recoveryEnv = (env: Record<string, string | undefined>) =>
  env.PGDATA && !isAbsolute(env.PGDATA) ? { ...env, PGDATA: cwd() } : env;

/** One file for restore_command: FETCHED, NOT_IN_ARCHIVE only on the rule's evidence, else FAILED after the retries. */
export async function fetchForRecovery(
  runtime: Runtime,
  runner: WaleRunner,
  config: Config,
  name: string,
  path: string,
  retries = FETCH_RETRIES,
): Promise<number> {
  const store = new StoreCheck(runner, config, config.timeouts.fetch, isDirectory);
  const say = (line: string) => runtime.stderr(`wale-sidecar wal-fetch: ${line}\n`);
  for (let attempt = 1; ; attempt++) {
    // WAL-E writes <path> in place: a failed try's partial file must not pass the next try's check.
    await rm(path, { force: true });
    // WALE_FETCH_FLAGS, -p=0 by default: WAL-E 1.1.1's own prefetch daemons
    // die at start here (pep3143daemon's parent_is_inet: ENOTSOCK on a
    // pipe), each with a CRITICAL traceback that would also hide a miss's
    // statement from judgeMiss.
    const result = await runner.run(walFetchArgv(config.wale, name, path), {
      timeoutMs: config.timeouts.fetch,
      env: walLogEnv(config.wale),
      onStderrLine: (line) => runtime.stderr(`${line}\n`),
    });
    let why: string;
    if (result.exitCode === 0) {
      // A WAL file is never empty; WAL-E's exit alone is not taken for the file.
      if (await nonEmpty(path)) return FETCHED;
      why = `WAL-E exited 0, but ${path} is missing or empty`;
    } else {
      const miss = await judgeMiss(result, name, store);
      if (miss.missing) {
        say(`${name} is not in the archive`);
        return NOT_IN_ARCHIVE;
      }
      why = result.timedOut
        ? `WAL-E timed out after ${config.timeouts.fetch / 1000} s`
        : `WAL-E exited with code ${result.exitCode}${miss.reason ? `; its "could not locate" is not believed: ${miss.reason}` : ""}`;
      if (!result.timedOut && !miss.reason && lastLines(result.stderr) === "") why += ", saying nothing";
    }
    await rm(path, { force: true });
    if (attempt >= retries.tries) {
      say(`${name}: ${why}; giving up after ${attempt} tries (exit ${FAILED}: PostgreSQL stops, a restart resumes)`);
      return FAILED;
    }
    say(`${name}: ${why}; trying again in ${retries.delayMs / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, retries.delayMs));
  }
}

async function nonEmpty(path: string): Promise<boolean> {
  try {
    return (await stat(path)).size > 0;
  } catch {
    return false;
  }
}
