/**
 * Prometheus metrics, on a registry of the sidecar's own (no global state).
 * examples/prometheus/alerts.yaml alerts on them, e.g. on
 * wale_sidecar_last_success_timestamp_seconds{operation="wal-push"} going
 * stale: archiving has stopped.
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";

/** What the sidecar runs WAL-E for: the `operation` label of its metrics. */
export const OPERATIONS = ["wal-push", "wal-fetch", "wal", "backup-push", "backup-list", "archive-verify"] as const;
export type Operation = (typeof OPERATIONS)[number];

export const RUN_OUTCOMES = ["success", "not_found", "failure", "timeout", "refused"] as const;
export type RunOutcome = (typeof RUN_OUTCOMES)[number];
export type JobState = "running" | "succeeded" | "failed";

export class Metrics {
  readonly registry = new Registry();
  private readonly requests = new Counter({
    name: "wale_sidecar_requests_total",
    help: "HTTP requests answered, by route and status code.",
    labelNames: ["route", "status"] as const,
    registers: [this.registry],
  });
  private readonly runs = new Counter({
    name: "wale_sidecar_wale_runs_total",
    help: "WAL-E runs, by operation and outcome.",
    labelNames: ["operation", "outcome"] as const,
    registers: [this.registry],
  });
  private readonly duration = new Histogram({
    name: "wale_sidecar_wale_duration_seconds",
    help: "How long WAL-E ran, by operation.",
    labelNames: ["operation"] as const,
    buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400],
    registers: [this.registry],
  });
  private readonly inFlight = new Gauge({
    name: "wale_sidecar_in_flight",
    help: "Operations running now.",
    labelNames: ["operation"] as const,
    registers: [this.registry],
  });
  private readonly lastSuccess = new Gauge({
    name: "wale_sidecar_last_success_timestamp_seconds",
    help: "When an operation last succeeded (Unix time).",
    labelNames: ["operation"] as const,
    registers: [this.registry],
  });
  private readonly lastSegment = new Gauge({
    name: "wale_sidecar_last_archived_segment_info",
    help: "The WAL file last archived through wal-push, as a label; the value is 1.",
    labelNames: ["file"] as const,
    registers: [this.registry],
  });
  private readonly jobState = new Gauge({
    name: "wale_sidecar_backup_job_state",
    help: "The state of the latest backup job: 1 for its state, 0 for the others.",
    labelNames: ["state"] as const,
    registers: [this.registry],
  });
  private readonly nextBackup = new Gauge({
    name: "wale_sidecar_next_backup_timestamp_seconds",
    help: "When the next scheduled backup runs (Unix time); 0 without a schedule.",
    registers: [this.registry],
  });

  // From the last verify (src/archive/verifier.ts), as CloudNativePG's
  // barman-cloud plugin names them. 0 for "none": no window, no backup.
  private readonly firstRecoverability = new Gauge({
    name: "wale_sidecar_first_recoverability_point_seconds",
    help: "The earliest moment a restore can reach, by the last verify (Unix time); 0 when no backup can be restored.",
    registers: [this.registry],
  });
  private readonly lastAvailableBackup = new Gauge({
    name: "wale_sidecar_last_available_backup_timestamp_seconds",
    help: "When the newest restorable base backup ended, by the last verify (Unix time); 0 when none.",
    registers: [this.registry],
  });
  private readonly lastFailedBackup = new Gauge({
    name: "wale_sidecar_last_failed_backup_timestamp_seconds",
    help: "When a base backup of this sidecar last failed (Unix time); 0 until one fails.",
    registers: [this.registry],
  });
  private readonly archiveGaps = new Gauge({
    name: "wale_sidecar_archive_gaps",
    help: "Segments missing from the oldest kept backup's start to the newest archived segment, by the last verify.",
    registers: [this.registry],
  });
  private readonly archiveRestorable = new Gauge({
    name: "wale_sidecar_archive_restorable",
    help: "1 when the last verify found that the newest backup restores to the newest archived segment, else 0.",
    registers: [this.registry],
  });
  private readonly verifyDuration = new Gauge({
    name: "wale_sidecar_verify_duration_seconds",
    help: "How long the last verify took: the store's listing and its analysis.",
    registers: [this.registry],
  });
  private readonly lastVerify = new Gauge({
    name: "wale_sidecar_last_verify_timestamp_seconds",
    help: "When a verify last finished listing the store (Unix time).",
    labelNames: ["outcome"] as const,
    registers: [this.registry],
  });

  /** The figures of a verify's report (src/archive/verifier.ts); times in Unix seconds, 0 for none. */
  verified(v: {
    firstRecoverability: number;
    lastAvailableBackup: number;
    gaps: number;
    ok: boolean;
    seconds: number;
  }) {
    this.firstRecoverability.set(v.firstRecoverability);
    this.lastAvailableBackup.set(v.lastAvailableBackup);
    this.archiveGaps.set(v.gaps);
    this.archiveRestorable.set(v.ok ? 1 : 0);
    this.verifyDuration.set(v.seconds);
    this.lastVerify.set({ outcome: "listed" }, Date.now() / 1000);
  }

  /** A verify that could not list the store: the figures of the last one stay, and this says so. */
  verifyFailed() {
    this.lastVerify.set({ outcome: "failed" }, Date.now() / 1000);
  }

  backupFailed() {
    this.lastFailedBackup.set(Date.now() / 1000);
  }

  request(route: string, status: number) {
    this.requests.inc({ route, status: String(status) });
  }

  /** Counts an operation in flight until the returned function is called. */
  started(operation: Operation): () => void {
    this.inFlight.inc({ operation });
    return () => this.inFlight.dec({ operation });
  }

  ran(operation: Operation, outcome: RunOutcome, seconds: number, file?: string) {
    this.runs.inc({ operation, outcome });
    this.duration.observe({ operation }, seconds);
    if (outcome !== "success") return;
    this.lastSuccess.set({ operation }, Date.now() / 1000);
    if (operation === "wal-push" && file) {
      this.lastSegment.reset();
      this.lastSegment.set({ file }, 1);
    }
  }

  backupJob(state: JobState) {
    for (const s of ["running", "succeeded", "failed"] as const) this.jobState.set({ state: s }, s === state ? 1 : 0);
  }

  nextScheduledBackup(at: Date | null) {
    if (at) this.nextBackup.set(at.getTime() / 1000);
    else this.nextBackup.reset(); // prom-client 15: a reset gauge without labels reads 0, not absent
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
