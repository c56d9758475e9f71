/**
 * Polling for an event, bounded: for unit and end-to-end tests alike, so
 * it uses no Bun globals (the unit tests also run on Deno). A test waits
 * for the event itself, never for a fixed time.
 */

type Truthy<T> = Exclude<T, false | null | undefined | "" | 0>;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `probe` every `everyMs` until it returns a truthy value, or throws after `ms`. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T> | T,
  ms = 60_000,
  everyMs = 200,
): Promise<Truthy<T>> {
  const deadline = Date.now() + ms;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value) return value as Truthy<T>;
    } catch (error) {
      last = error;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? `: ${last}` : ""}`);
}
