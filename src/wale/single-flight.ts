/**
 * Shares one run of a piece of work among everyone who asks for the same key
 * while it runs. PostgreSQL re-runs archive_command after wget gives up, so
 * the same segment can be asked for while its first push is still going.
 */
export class SingleFlight<T> {
  private readonly flights = new Map<string, Promise<T>>();

  run(key: string, work: () => Promise<T>): { result: Promise<T>; joined: boolean } {
    const running = this.flights.get(key);
    if (running) return { result: running, joined: true };
    const result = work().finally(() => this.flights.delete(key));
    this.flights.set(key, result);
    return { result, joined: false };
  }
}
