/**
 * Readiness's `wal-e version`: /readyz is open, so a burst of probes must
 * cost one WAL-E run, not one each, and must never queue past
 * WALE_MAX_QUEUE ahead of /wal-push.
 */
import { expect, test } from "bun:test";
import { parseConfig } from "../../src/config/config.ts";
import { Readiness } from "../../src/observe/health.ts";
import type { Child, Runtime } from "../../src/runtime/types.ts";
import { Limiter } from "../../src/wale/limiter.ts";
import { WaleRunner } from "../../src/wale/runner.ts";
import { fakeRuntime } from "../support/fake-runtime.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const config = parseConfig({
  PGDATA: "/nonexistent/pgdata",
  WALE_FILE_PREFIX: "file://localhost/tmp/nowhere",
  WALE_BIN: "/opt/wal-e",
});
const wale = (checks: Awaited<ReturnType<Readiness["checks"]>>) => checks.find((c) => c.name === "wal-e");

test("concurrent checks share one `wal-e version` run; a good answer is kept a minute", async () => {
  const { runtime, spawned } = fakeRuntime({ exitCode: 0, stdout: "1.1.1\n" });
  let clock = 0;
  const readiness = new Readiness(config, new WaleRunner(runtime, config.wale), () => clock);
  const all = await Promise.all(Array.from({ length: 200 }, () => readiness.checks()));
  expect(spawned.length).toBe(1);
  expect(all.every((checks) => wale(checks)?.ok && wale(checks)?.detail === "1.1.1")).toBe(true);
  clock = 59_000;
  await readiness.checks();
  expect(spawned.length).toBe(1);
  clock = 61_000;
  await readiness.checks();
  expect(spawned.length).toBe(2);
});

test("a failure is kept a few seconds: a burst while WAL-E is broken runs it once, then it is tried again", async () => {
  const { runtime, spawned } = fakeRuntime({ exitCode: 1, stderr: "ImportError: no module named gevent\n" });
  let clock = 0;
  const readiness = new Readiness(config, new WaleRunner(runtime, config.wale), () => clock);
  const first = await Promise.all(Array.from({ length: 50 }, () => readiness.checks()));
  expect(spawned.length).toBe(1);
  expect(wale(first[0] ?? [])).toEqual({
    name: "wal-e",
    ok: false,
    detail: "/opt/wal-e version exited 1: ImportError: no module named gevent",
  });
  clock = 4_000;
  expect(wale(await readiness.checks())?.ok).toBe(false);
  expect(spawned.length).toBe(1);
  clock = 5_500;
  await readiness.checks();
  expect(spawned.length).toBe(2);
});

test("with every slot taken and the queue full, readiness says busy at once and queues nothing past the bound", async () => {
  // WAL-E runs that hang until let go: they hold the one slot and the one queue place.
  const held: Array<() => void> = [];
  const fake = fakeRuntime();
  const runtime: Runtime = {
    ...fake.runtime,
    spawn(argv, options): Child {
      const child = fake.runtime.spawn(argv, options);
      return { ...child, exited: new Promise<number>((resolve) => held.push(() => resolve(0))) };
    },
  };
  const limiter = new Limiter(1, 1);
  const runner = new WaleRunner(runtime, config.wale, limiter);
  const push = runner.run(["wal-e", "wal-push", "x"]);
  const queued = runner.run(["wal-e", "wal-push", "y"]);
  expect(limiter.queued).toBe(1);
  const readiness = new Readiness(config, runner, () => 0);
  const checks = await readiness.checks();
  expect(wale(checks)?.ok).toBe(false);
  expect(wale(checks)?.detail).toMatch(/^\/opt\/wal-e version not run: busy: 1 WAL-E runs and 1 waiting/);
  expect(limiter.queued).toBe(1);
  expect(fake.spawned.length).toBe(1);
  held.shift()?.();
  await push;
  // The queued run gets the slot and starts; let it go too.
  while (held.length === 0) await sleep(1);
  held.shift()?.();
  await queued;
});
