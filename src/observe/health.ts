/**
 * Readiness: can this sidecar archive right now? Each check names itself, so
 * a 503 says which one failed.
 */
import { constants } from "node:fs";
import { access, stat } from "node:fs/promises";
import type { Config } from "../config/config.ts";
import type { WaleRunner } from "../wale/runner.ts";

export interface Check {
  name: "wal-e" | "pgwal" | "storage";
  ok: boolean;
  detail: string;
}

/** A good `wal-e version` is remembered this long; readiness probes come every few seconds. */
const VERSION_CACHE_MS = 60_000;
/** A failed one this long: a burst of probes while WAL-E is broken (or busy) costs one run, not one each. */
const FAILURE_CACHE_MS = 5_000;

export class Readiness {
  private cached: { check: Check; until: number } | undefined;
  /** The `wal-e version` run under way: concurrent checks wait for it instead of starting their own. */
  private inFlight: Promise<Check> | undefined;

  constructor(
    private readonly config: Config,
    private readonly runner: WaleRunner,
    private readonly now: () => number = () => performance.now(),
  ) {}

  async checks(): Promise<Check[]> {
    return Promise.all([this.wale(), this.pgwal(), Promise.resolve(this.storage())]);
  }

  private wale(): Promise<Check> {
    if (this.cached && this.now() < this.cached.until) return Promise.resolve(this.cached.check);
    this.inFlight ??= this.version()
      .then((check) => {
        this.cached = { check, until: this.now() + (check.ok ? VERSION_CACHE_MS : FAILURE_CACHE_MS) };
        return check;
      })
      .finally(() => {
        this.inFlight = undefined;
      });
    return this.inFlight;
  }

  /**
   * One `wal-e version`, through the same queue as the archive's work and
   * bounded by it (WALE_MAX_QUEUE): an open route must not queue past the
   * bound, or a burst of probes would starve /wal-push. A full queue is an
   * answer too: not ready, busy.
   */
  private async version(): Promise<Check> {
    const bin = this.config.wale.bin;
    try {
      const result = await this.runner.run([bin, "version"], { timeoutMs: 10_000 });
      if (result.exitCode === 0) return { name: "wal-e", ok: true, detail: result.stdout.trim() };
      const why = result.timedOut
        ? "timed out"
        : `exited ${result.exitCode}: ${result.stderr.trim().split("\n").pop() ?? ""}`;
      return { name: "wal-e", ok: false, detail: `${bin} version ${why}` };
    } catch (error) {
      return { name: "wal-e", ok: false, detail: `${bin} version not run: ${(error as Error).message}` };
    }
  }

  private async pgwal(): Promise<Check> {
    const { pgwal } = this.config;
    try {
      if (!(await stat(pgwal)).isDirectory())
        return { name: "pgwal", ok: false, detail: `${pgwal} is not a directory` };
      await access(pgwal, constants.R_OK | constants.X_OK);
      return { name: "pgwal", ok: true, detail: pgwal };
    } catch (error) {
      return { name: "pgwal", ok: false, detail: `${pgwal}: ${(error as NodeJS.ErrnoException).code ?? error}` };
    }
  }

  private storage(): Check {
    const { store } = this.config;
    if (store.kind === "none") return { name: "storage", ok: false, detail: store.problem };
    return { name: "storage", ok: true, detail: store.variable };
  }
}
