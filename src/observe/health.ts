/**
 * Readiness: can this sidecar archive right now? Each check names itself, so
 * a 503 says which one failed.
 */
import { constants } from "node:fs";
import { access, stat } from "node:fs/promises";
import { type Config, STORAGE_PREFIXES } from "../config/config.ts";
import type { WaleRunner } from "../wale/wale.ts";

export interface Check {
  name: "wal-e" | "pgwal" | "storage";
  ok: boolean;
  detail: string;
}

/** A good `wal-e version` is remembered this long; readiness probes come every few seconds. */
const VERSION_CACHE_MS = 60_000;

export class Readiness {
  private versionOkUntil = 0;
  private version = "";

  constructor(
    private readonly config: Config,
    private readonly runner: WaleRunner,
  ) {}

  async checks(): Promise<Check[]> {
    return Promise.all([this.wale(), this.pgwal(), Promise.resolve(this.storage())]);
  }

  private async wale(): Promise<Check> {
    if (performance.now() < this.versionOkUntil) return { name: "wal-e", ok: true, detail: this.version };
    const result = await this.runner.run([this.config.wale.bin, "version"], { timeoutMs: 10_000, mustRun: true });
    if (result.exitCode !== 0) {
      const why = result.timedOut
        ? "timed out"
        : `exited ${result.exitCode}: ${result.stderr.trim().split("\n").pop() ?? ""}`;
      return { name: "wal-e", ok: false, detail: `${this.config.wale.bin} version ${why}` };
    }
    this.version = result.stdout.trim();
    this.versionOkUntil = performance.now() + VERSION_CACHE_MS;
    return { name: "wal-e", ok: true, detail: this.version };
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
    const set = STORAGE_PREFIXES.filter((name) => this.config.wale.env[name]);
    if (set.length === 1) return { name: "storage", ok: true, detail: set[0] as string };
    if (set.length === 0)
      return { name: "storage", ok: false, detail: `none of ${STORAGE_PREFIXES.join(", ")} is set` };
    return { name: "storage", ok: false, detail: `WAL-E refuses more than one store: ${set.join(", ")}` };
  }
}
