/**
 * What the sidecar's /metrics can hold: every series name, with each label's
 * values, read from a real Metrics registry after every one of its calls.
 * Request series come from the real app (src/http/app.ts) asked on each of
 * its declared routes, without the token and with it, and on a path no route
 * declares: the route labels are the ones app.ts and responses.ts write.
 * The examples' tests (test/examples/) check their queries against it, so a
 * dashboard panel or an alert rule cannot name a metric, a label or a label
 * value that the sidecar never exports.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../../src/config/config.ts";
import type { Metrics } from "../../src/observe/metrics.ts";
import { OPERATIONS, RUN_OUTCOMES } from "../../src/observe/metrics.ts";
import { fakeRuntime, sidecarFor } from "./fake-runtime.ts";

/** Labels Prometheus adds to every scraped series. */
export const TARGET_LABELS = ["instance", "job"];

/** Series name (a histogram as its _bucket, _sum and _count) → label → the values it takes. */
export type ExportedSeries = Map<string, Map<string, Set<string>>>;

const TOKEN = "exported-metrics-token-0123456789";
const SEGMENT = "000000010000000000000001";

/**
 * A sidecar with a token and WAL-E faked (every run exits 0), asked on
 * every GET route (its parameters a segment in pg_wal) without the token
 * and with it, then on an unknown path both ways, then while draining.
 * Its Metrics, holding what those answers counted.
 */
async function askedEveryRoute(dir: string): Promise<Metrics> {
  const pgdata = join(dir, "data");
  mkdirSync(join(pgdata, "pg_wal"), { recursive: true });
  writeFileSync(join(pgdata, "pg_wal", SEGMENT), "");
  const config = parseConfig({ WALE_SIDECAR_TOKEN: TOKEN, PGDATA: pgdata, WALE_SPOOL_DIR: join(dir, "spool") });
  const { app, deps, lifecycle } = sidecarFor(config, fakeRuntime().runtime);
  const paths = app.routes
    .filter((route) => route.method === "GET")
    .map((route) => route.path.replace(/:[^/]+|\*/g, SEGMENT));
  const ask = (path: string, headers: Record<string, string> = {}) =>
    app.handle(new Request(`http://127.0.0.1${path}`, { headers }));
  for (const path of [...paths, "/no-such-route"]) {
    await ask(path);
    await ask(path, { authorization: `Bearer ${TOKEN}` });
  }
  lifecycle.draining = true;
  for (const path of paths) await ask(path, { authorization: `Bearer ${TOKEN}` });
  return deps.metrics;
}

export async function exportedSeries(): Promise<ExportedSeries> {
  const dir = mkdtempSync(join(tmpdir(), "exported-metrics-"));
  const metrics = await askedEveryRoute(dir).finally(() => rmSync(dir, { recursive: true, force: true }));
  for (const operation of OPERATIONS) {
    metrics.started(operation)();
    for (const outcome of RUN_OUTCOMES) metrics.ran(operation, outcome, 1, "000000010000000000000001");
  }
  metrics.backupJob("failed");
  metrics.nextScheduledBackup(new Date());
  metrics.verified({ firstRecoverability: 1, lastAvailableBackup: 1, gaps: 0, ok: true, seconds: 1 });
  metrics.verifyFailed();
  metrics.backupFailed();
  const series: ExportedSeries = new Map();
  for (const metric of await metrics.registry.getMetricsAsJSON()) {
    for (const value of metric.values as Array<{ metricName?: string; labels: Record<string, string | number> }>) {
      const name = value.metricName ?? metric.name;
      const labels = series.get(name) ?? new Map<string, Set<string>>();
      series.set(name, labels);
      for (const [label, v] of Object.entries(value.labels))
        labels.set(label, (labels.get(label) ?? new Set()).add(String(v)));
    }
  }
  return series;
}
