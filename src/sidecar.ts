/**
 * One sidecar: its WAL-E runner, backup jobs, schedule, metrics and HTTP
 * app, built from the configuration. The serve command runs it; tests build
 * it around a fake runtime.
 */
import { BackupJobs } from "./backups";
import type { Config } from "./config";
import { Readiness } from "./health";
import type { Logger, Redact } from "./log";
import { Limiter } from "./limiter";
import { Metrics } from "./metrics";
import type { Deps, Outcome } from "./operations";
import { createApp } from "./routes";
import type { Runtime } from "./runtime/types";
import { type Schedule, startSchedule } from "./schedule";
import { SingleFlight } from "./single-flight";
import { WaleRunner } from "./wale";

export interface Sidecar {
  deps: Deps;
  app: ReturnType<typeof createApp>;
  schedule: Schedule | null;
  /** Set on shutdown: new requests get 503. */
  lifecycle: { draining: boolean };
}

export function createSidecar(config: Config, runtime: Runtime, log: Logger, redact: Redact): Sidecar {
  const metrics = new Metrics();
  const runner = new WaleRunner(runtime, config.wale, new Limiter(config.limits.concurrency, config.limits.queue));
  const backups = new BackupJobs(config, runner, metrics, log);
  const deps: Deps = { config, runner, metrics, backups, pushes: new SingleFlight<Outcome>() };
  const schedule = config.backups.schedule ? startSchedule(config.backups.schedule, () => void backups.trigger("schedule")) : null;
  const lifecycle = { draining: false };
  const app = createApp({ deps, readiness: new Readiness(config, runner), schedule, lifecycle, log, redact });
  return { deps, app, schedule, lifecycle };
}
