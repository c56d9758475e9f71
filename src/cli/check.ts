/** `wale-sidecar check`: its help, its flags, and one call to the check (src/check/run.ts). */
import { type CheckOptions, runCheck } from "../check/run.ts";
import { type Command, helpOrRefusal, loadConfig, parseOrExplain, readFlags, UsageError } from "./command.ts";

const HELP = `Usage: wale-sidecar check [--timeout <seconds>] [--sidecar <URL>]

The set-up check, to run once where the sidecar runs (its environment):
  1. connects to PostgreSQL as backup-push does (psql; PGHOST, PGPORT,
     PGUSER, PGPASSWORD, PGDATABASE) and reads archive_mode and
     archive_command;
  2. writes a WAL record and forces pg_switch_wal();
  3. waits, bounded, for that segment to reach the store through
     PostgreSQL's own archive_command, watching pg_stat_archiver, the store
     (WAL-E's wal-fetch of the segment, any store WAL-E supports) and the
     sidecar's /metrics;
  4. prints the path the segment took, with its timings.

Exits 0 when WAL-E reads the segment back from the store; 1 with one line
on stderr naming what is wrong: archive_mode off, an archive_command that
does not reach this sidecar, a store WAL-E cannot write, a token the
database side does not send, and more; 2 on bad arguments. To name WAL-E's
error when the sidecar answered PostgreSQL with a 5xx, check asks the
sidecar to push that segment once more, as archive_command does.

Options:
  --timeout <seconds>   how long to wait for the segment (default 60)
  --sidecar <URL>       the sidecar, for its /metrics
                        (default http://127.0.0.1:$WALE_LISTEN_PORT);
                        WALE_SIDECAR_TOKEN is sent when set
`;

/** Reads the flags; throws a UsageError with one line for anything wrong. No --sidecar: the caller's default. */
export function parseCheckArgs(args: string[]): { timeoutMs: number; sidecar?: string } {
  const given = readFlags(args, ["--timeout", "--sidecar"]);
  const timeout = given.get("--timeout") ?? "60";
  if (!/^\d{1,4}$/.test(timeout) || Number(timeout) < 1 || Number(timeout) > 3600)
    throw new UsageError(`--timeout must be a whole number of seconds from 1 to 3600, not "${timeout.slice(0, 80)}"`);
  const sidecar = given.get("--sidecar")?.replace(/\/+$/, "");
  if (sidecar !== undefined && !isSidecarUrl(sidecar))
    throw new UsageError(
      `--sidecar must be an http:// URL of the sidecar, such as http://wale:80, not "${sidecar.slice(0, 80)}"`,
    );
  return { timeoutMs: Number(timeout) * 1000, sidecar };
}

function isSidecarUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return ["http:", "https:"].includes(url.protocol) && url.search === "" && url.hash === "" && !url.username;
  } catch {
    return false;
  }
}

export const check: Command = {
  name: "check",
  summary: "the set-up check: force a WAL switch and follow the segment through archive_command to the store",
  help: HELP,
  async run(runtime, args) {
    const early = helpOrRefusal(runtime, this, args);
    if (early !== undefined) return early;
    const parsed = parseOrExplain(runtime, this, () => parseCheckArgs(args));
    if (!parsed) return 2;
    const config = loadConfig(runtime);
    if (!config) return 1;
    const options: CheckOptions = {
      timeoutMs: parsed.timeoutMs,
      sidecar: parsed.sidecar ?? `http://127.0.0.1:${config.listen.port}`,
    };
    return runCheck(runtime, config, options);
  },
};
