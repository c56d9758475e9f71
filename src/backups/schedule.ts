/** Backups on a cron schedule (WALE_BACKUP_SCHEDULE), with croner. */
import { Cron } from "croner";

export interface Schedule {
  /** When it fires next, or null. */
  next(): Date | null;
  stop(): void;
}

export function startSchedule(pattern: string, tick: () => void): Schedule {
  // protect: a tick that is still running is not started again.
  const cron = new Cron(pattern, { protect: true }, tick);
  return { next: () => cron.nextRun(), stop: () => cron.stop() };
}
