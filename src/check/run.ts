/**
 * `wale-sidecar check`, in order: read the settings that decide whether
 * PostgreSQL archives at all; force a WAL switch; wait, bounded, for that
 * segment to reach the store through PostgreSQL's own archive_command,
 * watching pg_stat_archiver, the store (through WAL-E) and the sidecar's
 * counts; then print the path the segment took with its timings, or one
 * line for what went wrong (src/check/diagnose.ts).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Config } from "../config/config.ts";
import { storeName } from "../config/store.ts";
import { redactor } from "../observe/log.ts";
import type { Runtime } from "../runtime/types.ts";
import { WaleRunner } from "../wale/runner.ts";
import {
  archivedBy,
  describeAnswers,
  diagnoseFailure,
  diagnoseTimeout,
  Finding,
  failedSince,
  refusal,
  type SidecarView,
  turningAway,
  waitsOut,
} from "./diagnose.ts";
import { Psql } from "./psql.ts";
import { between, countedPushes, pushOnce } from "./sidecar.ts";
import { inStore } from "./store.ts";

export interface CheckOptions {
  /** How long to wait for the segment, from the switch, in ms. */
  timeoutMs: number;
  /** The sidecar's base URL, for its /metrics. */
  sidecar: string;
}

/** pg_stat_archiver is read this often; a psql each time. */
const POLL_MS = 250;
/** WAL-E is asked this often until PostgreSQL says it archived (WAL-E's wal-push may take a segment along with another). */
const STORE_EVERY_MS = 2_000;
/** ... and this often after. */
const STORE_AFTER_ARCHIVED_MS = 1_000;
/** The least time check's own push is given, to name WAL-E's error. */
const PROBE_MS = 10_000;

const seconds = (s: number) => s.toFixed(2);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs the check; resolves with the exit code: 0 the segment arrived, 1 a finding on stderr. */
export async function runCheck(runtime: Runtime, config: Config, options: CheckOptions): Promise<number> {
  const runner = new WaleRunner(runtime, config.wale);
  const dir = await mkdtemp(join(tmpdir(), "wale-sidecar-check-"));
  // archive_command may hold the token itself, and WAL-E's errors a credential.
  const redact = redactor(config.secrets);
  try {
    await check(runner, config, options, dir, (line) => runtime.stdout(`${redact(line)}\n`));
    return 0;
  } catch (error) {
    if (!(error instanceof Finding)) throw error;
    runtime.stderr(`wale-sidecar check: ${redact(error.message)}\n`);
    return 1;
  } finally {
    await runner.close();
    await rm(dir, { recursive: true, force: true });
  }
}

async function check(runner: WaleRunner, config: Config, options: CheckOptions, dir: string, say: (l: string) => void) {
  const psql = new Psql(runner, config.wale.env);
  const store = storeName(config.store);
  const settings = await psql.settings();
  say(
    `PostgreSQL ${settings.version}: archive_mode ${settings.archiveMode}, archive_command '${settings.archiveCommand}'`,
  );
  const refused = refusal(settings);
  if (refused) throw new Finding(refused);

  const before = await countedPushes(options.sidecar, config.token);
  const sidecarSince = async () => between(before, await countedPushes(options.sidecar, config.token));
  const started = performance.now();
  const { segment, at } = await psql.switchWal();
  const elapsed = () => (performance.now() - started) / 1000;
  say(`pg_switch_wal → ${segment} (t=${seconds(elapsed())} s)`);

  const deadline = started + options.timeoutMs;
  let archived = false;
  let storeProblem: string | null = null;
  /** pg_stat_archiver's last failure already judged, and the sidecar's view that showed its 503s. */
  let judgedFailure: number | null = null;
  let turnedAway: SidecarView | null = null;
  let nextStore = started + STORE_EVERY_MS;
  for (;;) {
    const stats = await psql.archiver();
    if (!archived && archivedBy(stats, segment)) {
      archived = true;
      nextStore = 0;
      const when = stats.lastArchivedAt === null ? "" : ` at +${seconds(stats.lastArchivedAt - at)} s`;
      say(
        stats.lastArchivedWal === segment
          ? `PostgreSQL archived it (pg_stat_archiver)${when}`
          : `PostgreSQL archived up to ${stats.lastArchivedWal} (pg_stat_archiver)${when}`,
      );
    }
    // A failure of archive_command is judged once, as PostgreSQL records
    // it: diagnosed at once, unless the sidecar turned it away (waitsOut).
    if (failedSince(stats, at) && stats.lastFailedAt !== judgedFailure) {
      judgedFailure = stats.lastFailedAt;
      const sidecar = await sidecarSince();
      if (waitsOut(sidecar, turnedAway !== null)) {
        if (turnedAway === null) {
          say(
            "the sidecar turned archive_command away with 503 (busy, or shutting down): waiting for PostgreSQL's retry",
          );
        }
        if (turningAway(sidecar) || turnedAway === null) turnedAway = sidecar;
      } else {
        const probe =
          sidecar.kind === "counted" && Object.keys(sidecar.answered).some((status) => Number(status) >= 500)
            ? await pushOnce(
                options.sidecar,
                config.token,
                stats.lastFailedWal ?? segment,
                Math.max(PROBE_MS, deadline - performance.now()),
              )
            : undefined;
        throw new Finding(diagnoseFailure({ stats, settings, sidecar, probe, store, pgwal: config.pgwal }));
      }
    }
    if (performance.now() >= nextStore) {
      const found = await inStore(runner, config, segment, dir);
      if (found.kind === "there") {
        if (found.bytes !== settings.segmentBytes) {
          throw new Finding(
            `WAL-E fetched ${segment} back from the store ${store}, but it holds ${found.bytes} bytes, not wal_segment_size's ${settings.segmentBytes}`,
          );
        }
        say(`in the store: WAL-E fetched it back from ${store} (${found.bytes} bytes) by +${seconds(elapsed())} s`);
        say(throughSidecar(await sidecarSince()));
        say(`OK: ${segment} reached the store through archive_command in ${seconds(elapsed())} s`);
        return;
      }
      storeProblem = found.kind === "failed" ? found.reason : null;
      nextStore = performance.now() + (archived ? STORE_AFTER_ARCHIVED_MS : STORE_EVERY_MS);
    }
    if (performance.now() >= deadline) {
      throw new Finding(
        diagnoseTimeout({
          segment,
          seconds: options.timeoutMs / 1000,
          stats,
          settings,
          sidecar: await sidecarSince(),
          turnedAway,
          storeProblem,
          store,
        }),
      );
    }
    await sleep(POLL_MS);
  }
}

/** The sidecar's part of the path, as it counted it. */
function throughSidecar(sidecar: SidecarView): string {
  if (sidecar.kind === "unasked") return `the sidecar at ${sidecar.url} could not be asked (${sidecar.reason})`;
  const answers = describeAnswers(sidecar.answered);
  return answers === "none"
    ? `the sidecar at ${sidecar.url} counted no /wal-push since the check began: archive_command reaches the store another way`
    : `through the sidecar at ${sidecar.url}: /wal-push answered ${answers} since the check began`;
}
