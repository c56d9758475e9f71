/**
 * The sidecar's verifies: GET /archive-verify, after every backup (and its
 * retention run), and on WALE_VERIFY_SCHEDULE. Each updates the metrics
 * from its report, so /metrics always says what the last verify said.
 *
 * A scheduled verify asked for while one runs joins it. The one after a
 * backup does not: its retention run may have deleted backups and WAL since
 * the running one listed the store, and joining would report a window that
 * starts at a deleted backup. Nor does one asked for over HTTP (the asker
 * may just have changed the store). They wait for the running one to end
 * and share one new listing, however many ask meanwhile.
 */
import type { Config } from "../config/config.ts";
import { messageOf } from "../errors.ts";
import type { Logger } from "../observe/log.ts";
import type { Metrics } from "../observe/metrics.ts";
import type { WaleRunner } from "../wale/runner.ts";
import { type Verified, VerifyFailed, verifyArchive } from "./verify-store.ts";

export type VerifyTrigger = "http" | "backup" | "schedule";

export class Verifier {
  private running: Promise<Verified> | null = null;
  /** The verify that starts once the running one ends, for those that need a listing begun after they asked. */
  private next: Promise<Verified> | null = null;

  constructor(
    private readonly config: Config,
    private readonly runner: WaleRunner,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {}

  /**
   * Verifies, or joins a verify whose listing began after this was asked
   * for (a scheduled one joins the verify running); rejects with
   * VerifyFailed when the store could not be listed.
   */
  run(trigger: VerifyTrigger): Promise<Verified> {
    if (!this.running) return this.start(trigger);
    if (trigger === "schedule") return this.running;
    this.next ??= this.running
      .catch(() => {})
      .then(() => {
        this.next = null;
        // One started meanwhile began after this was asked for: as good as a new one.
        return this.running ?? this.start(trigger);
      });
    return this.next;
  }

  /** Resolves when no verify runs or waits to. */
  async idle(): Promise<void> {
    while (this.running || this.next) await (this.next ?? this.running)?.catch(() => {});
  }

  private start(trigger: VerifyTrigger): Promise<Verified> {
    const running = this.verify(trigger).finally(() => {
      this.running = null;
    });
    this.running = running;
    return running;
  }

  private async verify(trigger: VerifyTrigger): Promise<Verified> {
    try {
      const verified = await verifyArchive(this.runner, this.config, this.config.timeouts.fetch);
      const { report } = verified;
      const epoch = (iso: string | null | undefined) => (iso ? Date.parse(iso) / 1000 : 0);
      this.metrics.verified({
        firstRecoverability: epoch(report.window?.earliest),
        lastAvailableBackup: epoch(report.backups.filter((b) => b.restorable).at(-1)?.finished),
        gaps: report.gaps,
        ok: report.ok,
        seconds: verified.seconds,
      });
      (report.ok ? this.log.info : this.log.warn)("verify", {
        trigger,
        ok: report.ok,
        gaps: report.gaps,
        window_from: report.window?.from,
        finding: report.findings[0]?.message,
        seconds: Math.round(verified.seconds * 1000) / 1000,
      });
      return verified;
    } catch (error) {
      this.metrics.verifyFailed();
      const message = messageOf(error).split("\n")[0];
      this.log.error("verify failed", { trigger, error: message });
      throw error instanceof VerifyFailed
        ? error
        : new VerifyFailed(`verify failed: ${message}`, false, { cause: error });
    }
  }
}
