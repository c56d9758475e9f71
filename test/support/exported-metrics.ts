/**
 * What the sidecar's /metrics can hold: every series name, with each label's
 * values, read from a real Metrics registry after every one of its calls.
 * The examples' tests (test/examples/) check their queries against it, so a
 * dashboard panel or an alert rule cannot name a metric, a label or a label
 * value that the sidecar never exports.
 */
import { Metrics, OPERATIONS, RUN_OUTCOMES } from "../../src/observe/metrics.ts";

/** Labels Prometheus adds to every scraped series. */
export const TARGET_LABELS = ["instance", "job"];

/** Series name (a histogram as its _bucket, _sum and _count) → label → the values it takes. */
export type ExportedSeries = Map<string, Map<string, Set<string>>>;

export async function exportedSeries(): Promise<ExportedSeries> {
  const metrics = new Metrics();
  metrics.request("/wal-push/:name", 200);
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
