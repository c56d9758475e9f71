/**
 * One sidecar: its WAL-E runner, backup jobs, schedule, metrics and HTTP
 * app, built from the configuration. The serve command runs it; tests build
 * it around a fake runtime.
 */

import { StoreCheck } from "./archive/not-in-archive.ts";
import { Verifier } from "./archive/verifier.ts";
import { WaleArchive } from "./archive/wale-archive.ts";
import { BackupJobs } from "./backups/jobs.ts";
import { type Schedule, startSchedule } from "./backups/schedule.ts";
import type { Config } from "./config/config.ts";
import { type App, createApp } from "./http/app.ts";
import type { Lifecycle } from "./http/auth.ts";
import { Readiness } from "./observe/health.ts";
import type { Logger, Redact } from "./observe/log.ts";
import { Metrics } from "./observe/metrics.ts";
import type { Deps, Outcome } from "./operations/operations.ts";
import type { Runtime } from "./runtime/types.ts";
import { isDirectory } from "./wal/paths.ts";
import { Spool } from "./wal/spool.ts";
import { Limiter } from "./wale/limiter.ts";
import { WaleRunner } from "./wale/runner.ts";
import { SingleFlight } from "./wale/single-flight.ts";

export interface Sidecar {
  deps: Deps;
  /** Every WAL-E run: shutdown waits for them, then kills them. */
  runner: WaleRunner;
  app: App;
  schedule: Schedule | null;
  /** WALE_VERIFY_SCHEDULE's. */
  verifySchedule: Schedule | null;
  lifecycle: Lifecycle;
  /** Once, as the sidecar starts: WaleArchive.syncLeftovers; the reason when it failed, else null. */
  syncLeftovers(): Promise<string | null>;
}

export function createSidecar(config: Config, runtime: Runtime, log: Logger, redact: Redact): Sidecar {
  const metrics = new Metrics();
  const runner = new WaleRunner(runtime, config.wale, new Limiter(config.limits.concurrency, config.limits.queue));
  const verifier = new Verifier(config, runner, metrics, log);
  const spool = new Spool(config, runner, log);
  const store = new StoreCheck(runner, config, config.timeouts.fetch, isDirectory);
  const archive = new WaleArchive(config, runner, spool, store);
  // After every backup and its retention run: does the window still start at a kept backup?
  const backups = new BackupJobs(config, archive, metrics, log, () => void verifier.run("backup").catch(() => {}));
  const deps: Deps = { config, archive, metrics, backups, verifier, pushes: new SingleFlight<Outcome>(), spool };
  const schedule = config.backups.schedule
    ? startSchedule(config.backups.schedule, () => void backups.trigger("schedule"))
    : null;
  const verifySchedule = config.verify.schedule
    ? startSchedule(config.verify.schedule, () => void verifier.run("schedule").catch(() => {}))
    : null;
  const lifecycle: Lifecycle = { draining: false, backupInFlight: false };
  const app = createApp({ deps, readiness: new Readiness(config, runner), schedule, lifecycle, log, redact });
  const syncLeftovers = async () => (await archive.syncLeftovers())?.reason.replace(/^: /, "") ?? null;
  return { deps, runner, app, schedule, verifySchedule, lifecycle, syncLeftovers };
}
