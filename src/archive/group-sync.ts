/**
 * Group commit for a sync of a whole file system: callers that ask while
 * one runs share the next one, instead of each running its own.
 *
 * A sync covers what was written before it started, and nothing written
 * after. So a caller is answered by a sync that starts after it asked:
 * never by one already running (it may have passed the caller's writes),
 * always by the next. One sync runs at a time; the callers that ask while
 * it runs wait for it to end, and then share a single sync between them.
 * Its outcome, a value or a thrown error, is every sharer's.
 */
export class GroupSync<T> {
  private running = false;
  /** The callers the next sync answers, in the order they asked. */
  private waiting: Array<{ resolve: (value: T) => void; reject: (error: unknown) => void }> = [];

  /** `sync` runs one sync; it is never called while a previous call's promise is pending. */
  constructor(private readonly sync: () => Promise<T>) {}

  /** The outcome of a sync that starts after this call. */
  after(): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      if (!this.running) void this.start();
    });
  }

  private async start(): Promise<void> {
    const batch = this.waiting;
    this.waiting = [];
    this.running = true;
    try {
      const value = await this.sync();
      for (const waiter of batch) waiter.resolve(value);
    } catch (error) {
      for (const waiter of batch) waiter.reject(error);
    } finally {
      this.running = false;
      // Those who asked while it ran: the next sync, for all of them.
      if (this.waiting.length > 0) void this.start();
    }
  }
}
