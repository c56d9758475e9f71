import { describe, expect, test } from "bun:test";
import { GroupSync } from "../../src/archive/group-sync.ts";

/** A sync whose runs end when the test says: each run is numbered, from 1, and ends with its number or an error. */
function scriptedSync() {
  const runs: Array<{ end: () => void; fail: (error: Error) => void }> = [];
  let running = 0;
  let mostAtOnce = 0;
  const sync = () => {
    running++;
    mostAtOnce = Math.max(mostAtOnce, running);
    const number = runs.length + 1;
    return new Promise<number>((resolve, reject) => {
      const done = () => running--;
      runs.push({
        end: () => {
          done();
          resolve(number);
        },
        fail: (error) => {
          done();
          reject(error);
        },
      });
    });
  };
  return { sync, runs, mostAtOnce: () => mostAtOnce };
}

/** Lets every pending promise callback run. */
const settle = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

describe("GroupSync", () => {
  test("with none running, a call starts a sync at once and gets its outcome", async () => {
    const fake = scriptedSync();
    const group = new GroupSync(fake.sync);
    const first = group.after();
    expect(fake.runs).toHaveLength(1);
    fake.runs[0]?.end();
    expect(await first).toBe(1);
  });

  test("a sync already running when one asks does not answer it: the next one does, started once the first ended", async () => {
    const fake = scriptedSync();
    const group = new GroupSync(fake.sync);
    const answered: string[] = [];
    const early = group.after().then((run) => answered.push(`early ${run}`));
    const late = group.after().then((run) => answered.push(`late ${run}`));
    await settle();
    // One at a time: the late caller's sync waits for the running one.
    expect(fake.runs).toHaveLength(1);
    fake.runs[0]?.end();
    await early;
    await settle();
    expect(answered).toEqual(["early 1"]);
    expect(fake.runs).toHaveLength(2);
    fake.runs[1]?.end();
    await late;
    expect(answered).toEqual(["early 1", "late 2"]);
    expect(fake.mostAtOnce()).toBe(1);
  });

  test("all who ask while one runs share one sync", async () => {
    const fake = scriptedSync();
    const group = new GroupSync(fake.sync);
    const first = group.after();
    const waiting = [group.after(), group.after(), group.after()];
    fake.runs[0]?.end();
    expect(await first).toBe(1);
    await settle();
    expect(fake.runs).toHaveLength(2);
    fake.runs[1]?.end();
    expect(await Promise.all(waiting)).toEqual([2, 2, 2]);
    // Nothing left to sync: no third run.
    await settle();
    expect(fake.runs).toHaveLength(2);
  });

  test("a failed sync fails every one of its sharers, and the next sync runs for those who asked meanwhile", async () => {
    const fake = scriptedSync();
    const group = new GroupSync(fake.sync);
    const first = group.after();
    const sharers = Promise.allSettled([group.after(), group.after()]);
    fake.runs[0]?.end();
    await first;
    await settle();
    const meanwhile = group.after();
    fake.runs[1]?.fail(new Error("EIO"));
    const outcomes = await sharers;
    expect(outcomes.map((outcome) => outcome.status)).toEqual(["rejected", "rejected"]);
    for (const outcome of outcomes) expect(outcome.status === "rejected" && String(outcome.reason)).toContain("EIO");
    await settle();
    expect(fake.runs).toHaveLength(3);
    fake.runs[2]?.end();
    expect(await meanwhile).toBe(3);
  });

  test("a sync that throws before it returns a promise fails its callers, and the next call runs a new one", async () => {
    let calls = 0;
    const group = new GroupSync<number>(() => {
      calls++;
      if (calls === 1) throw new Error("no sync");
      return Promise.resolve(calls);
    });
    await expect(group.after()).rejects.toThrow("no sync");
    expect(await group.after()).toBe(2);
  });

  test("no caller is lost: many calls at random moments each get an outcome from a sync that started after they asked", async () => {
    let started = 0;
    let clock = 0;
    const group = new GroupSync(async () => {
      const startedAt = ++clock;
      started++;
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 3));
      return startedAt;
    });
    const calls = Array.from({ length: 200 }, async (_, i) => {
      await new Promise((resolve) => setTimeout(resolve, (i * 7) % 11));
      const askedAt = clock;
      const startedAt = await group.after();
      return startedAt > askedAt;
    });
    const covered = await Promise.all(calls);
    expect(covered).toHaveLength(200);
    expect(covered.every(Boolean)).toBe(true);
    // Shared: far fewer syncs than calls.
    expect(started).toBeLessThan(200);
  });
});
