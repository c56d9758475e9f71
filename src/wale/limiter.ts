/**
 * Caps the WAL-E processes running at once (WALE_MAX_CONCURRENCY). Work past
 * the cap waits in a queue of bounded length (WALE_MAX_QUEUE); past that it
 * is turned away at once (Busy, a 503 over HTTP), so a flood costs a retry, not memory.
 */
import { Busy } from "./errors.ts";

export class Limiter {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(
    private readonly max: number,
    private readonly maxQueue: number,
  ) {}

  /**
   * Resolves with a release function once a slot is free. `mustRun` work
   * (backups, readiness) may queue past the bound: it is not part of a flood.
   */
  async acquire(mustRun = false): Promise<() => void> {
    if (this.running >= this.max) {
      if (!mustRun && this.waiting.length >= this.maxQueue) {
        throw new Busy(`busy: ${this.running} WAL-E runs and ${this.waiting.length} waiting; retry shortly`);
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.running++;
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      // Hand the slot straight to the next in line, or give it back.
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    };
  }

  get queued(): number {
    return this.waiting.length;
  }
}
