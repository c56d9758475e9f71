import { expect, test } from "bun:test";
import { SingleFlight } from "../../src/wale/single-flight.ts";

test("SingleFlight: who asks for a key while it runs shares its run; after it ends, a new one starts", async () => {
  const flights = new SingleFlight<number>();
  let runs = 0;
  let finish: (n: number) => void = () => {};
  const work = () => {
    runs++;
    return new Promise<number>((resolve) => (finish = resolve));
  };
  const first = flights.run("a", work);
  const second = flights.run("a", work);
  const other = flights.run("b", () => Promise.resolve(7));
  expect([first.joined, second.joined, other.joined]).toEqual([false, true, false]);
  finish(1);
  expect(await Promise.all([first.result, second.result, other.result])).toEqual([1, 1, 7]);
  expect(runs).toBe(1);

  // A failed run is shared too, and then forgotten.
  let fail: (error: Error) => void = () => {};
  const failing = flights.run("a", () => new Promise<number>((_, reject) => (fail = reject)));
  const joiner = flights.run("a", work);
  expect(joiner.joined).toBe(true);
  fail(new Error("boom"));
  await expect(failing.result).rejects.toThrow("boom");
  await expect(joiner.result).rejects.toThrow("boom");
  const again = flights.run("a", work);
  expect(again.joined).toBe(false);
  finish(2);
  expect(await again.result).toBe(2);
  expect(runs).toBe(2);
});
