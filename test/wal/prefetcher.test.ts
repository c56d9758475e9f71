/**
 * The prefetcher's worker with a stand-in for src/workers/prefetch.py: a fake child
 * that reads segment names from its stdin and answers each one as the test
 * says. The real src/workers/prefetch.py, with real WAL-E, runs in
 * test/e2e/prefetch.e2e.test.ts and in every restore through the sidecar.
 */
import { afterAll, describe, expect, test } from "bun:test";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { parseConfig } from "../../src/config/config.ts";
import { createLogger } from "../../src/observe/log.ts";
import type { Child, Runtime } from "../../src/runtime/types.ts";
import { createPrefetcher, type Prefetcher } from "../../src/wal/prefetcher.ts";
import { Limiter } from "../../src/wale/limiter.ts";
import { WaleRunner } from "../../src/wale/runner.ts";
import { fakeRuntime } from "../support/fake-runtime.ts";
import { waitFor } from "../support/wait.ts";

const base = mkdtempSync(join(tmpdir(), "prefetcher-"));
afterAll(() => rmSync(base, { recursive: true, force: true }));

/** A pip-installed `wal-e`: its first line names WAL-E's Python (a stand-in; the fake runtime runs nothing). */
const python3 = join(base, "python3");
writeFileSync(python3, "#!/bin/sh\n");
chmodSync(python3, 0o755);
const waleBin = join(base, "wal-e");
writeFileSync(waleBin, `#!${python3}\nimport sys\nfrom wal_e.cmd import main\n`);
chmodSync(waleBin, 0o755);

const quiet = createLogger(
  () => {},
  (text) => text,
);
const SEG = (n: number) => `0000000100000000000000${n.toString(16).toUpperCase().padStart(2, "0")}`;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** "silent": started, and never answered; "queued": not even started (it waits behind others). */
type Answer = "ok" | "failed" | "missing" | "located" | "empty" | "silent" | "queued";

/**
 * Fake src/workers/prefetch.py processes: each answers a job on its stdin
 * (`<verb>\t<id>\t<name>\t<dest>`) with "started <id>" and `answer(name)`, writing the file
 * to <dest> for "ok". `received` is each job as "<verb> <name>".
 */
function fakeWorkers(answer: (segment: string) => Answer) {
  const spawned: string[][] = [];
  const received: string[] = [];
  let stdinClosed = 0;
  const children: { die(code: number, stderr?: string): void }[] = [];
  const { runtime } = fakeRuntime();
  const fake: Runtime = {
    ...runtime,
    spawn(argv): Child {
      spawned.push(argv);
      let out!: ReadableStreamDefaultController<Uint8Array>;
      let err!: ReadableStreamDefaultController<Uint8Array>;
      let exit!: (code: number) => void;
      const exited = new Promise<number>((resolve) => (exit = resolve));
      let dead = false;
      const die = (code: number, stderr = "") => {
        if (dead) return;
        dead = true;
        if (stderr) err.enqueue(encoder.encode(stderr));
        out.close();
        err.close();
        exit(code);
      };
      children.push({ die });
      return {
        pid: 100 + spawned.length,
        exited,
        stdin: new WritableStream<Uint8Array>({
          write(chunk) {
            for (const job of decoder.decode(chunk).split("\n").filter(Boolean)) {
              const [verb, id, name = "", dest = ""] = job.split("\t");
              received.push(`${verb} ${name}`);
              const said = answer(name);
              if (said !== "queued") out.enqueue(encoder.encode(`started ${id}\n`));
              if (said === "ok") {
                if (verb === "prefetch") mkdirSync(dirname(dest), { recursive: true });
                writeFileSync(dest, `fetched ${name}`);
                out.enqueue(encoder.encode(`ok ${id}\n`));
              }
              if (said === "missing") out.enqueue(encoder.encode(`missing ${id} file /store\n`));
              if (said === "located" || said === "empty")
                out.enqueue(encoder.encode(`missing ${id} ${said} s3://wale/archive/wal_005/${name}.lzo\n`));
              if (said === "failed") out.enqueue(encoder.encode(`failed ${id} OSError: the disk is on fire\n`));
            }
          },
          close() {
            stdinClosed++;
            die(0);
          },
        }),
        stdout: new ReadableStream({
          start(controller) {
            out = controller;
          },
        }),
        stderr: new ReadableStream({
          start(controller) {
            err = controller;
          },
        }),
        kill: () => die(143),
      };
    },
  };
  return { runtime: fake, spawned, received, children, stdinClosed: () => stdinClosed };
}

async function setup(
  answer: (segment: string) => Answer,
  env: Record<string, string> = {},
  idleMs = 60_000,
  retryMs = 0,
): Promise<{ prefetcher: Prefetcher; logs: string[] } & ReturnType<typeof fakeWorkers>> {
  const config = parseConfig({
    PGDATA: join(base, "data"),
    WALE_BIN: waleBin,
    WALE_SPOOL_DIR: join(base, "spool"),
    ...env,
  });
  const workers = fakeWorkers(answer);
  const logs: string[] = [];
  const log = createLogger(
    (line) => logs.push(line),
    (text) => text,
  );
  const prefetcher = await createPrefetcher(config, new WaleRunner(workers.runtime, config.wale), log, {
    idleMs,
    retryMs,
  });
  if (!prefetcher) throw new Error("no prefetcher");
  return { prefetcher, logs, ...workers };
}

/** Waits (boundedly) for an event of the fake workers, polling often: the idle timer is 50 ms. */
const until = (what: string, event: () => boolean) => waitFor(what, event, 5_000, 5);

describe("the prefetch worker", () => {
  test("one WAL-E Python process takes every segment on its stdin; ok lands, failed does not", async () => {
    const { prefetcher, spawned, received } = await setup((s) => (s === SEG(3) ? "failed" : "ok"));
    expect(prefetcher.description).toBe(`one ${python3} process for every fetch (src/workers/prefetch.py)`);
    const first = prefetcher.start([SEG(2), SEG(3)]);
    const second = prefetcher.start([SEG(4)]);
    expect(await Promise.all([...first, ...second])).toEqual([true, false, true]);
    expect(spawned).toHaveLength(1);
    const [python, dashC, source, ...rest] = spawned[0] as string[];
    expect([python, dashC]).toEqual([python3, "-c"]);
    expect(source).toContain("def write_allocated(pipe, dest):");
    expect(rest).toEqual(["--terse", "wal-prefetch", join(base, "spool")]);
    expect(received).toEqual([`prefetch ${SEG(2)}`, `prefetch ${SEG(3)}`, `prefetch ${SEG(4)}`]);
    // What landed is in WAL-E's layout, and nothing is left running.
    const prefetched = join(base, "spool", ".wal-e", "prefetch");
    expect(readFileSync(join(prefetched, SEG(2)), "utf8")).toBe(`fetched ${SEG(2)}`);
    expect(existsSync(join(prefetched, SEG(3)))).toBe(false);
    expect(readdirSync(join(prefetched, "running"))).toEqual([]);
    prefetcher.stop();
  });

  test("idle for idleMs: its stdin is closed, it exits, and the next segments start a new one", async () => {
    const { prefetcher, spawned, stdinClosed } = await setup(() => "ok", {}, 50);
    expect(await Promise.all(prefetcher.start([SEG(2)]))).toEqual([true]);
    await until("the idle worker's stdin to close", () => stdinClosed() > 0);
    expect(stdinClosed()).toBe(1);
    expect(await Promise.all(prefetcher.start([SEG(3)]))).toEqual([true]);
    expect(spawned).toHaveLength(2);
    prefetcher.stop();
  });

  test("no segments: no worker starts, and a running one still ends when idle", async () => {
    const { prefetcher, spawned, stdinClosed } = await setup(() => "ok", {}, 50);
    expect(prefetcher.start([])).toEqual([]);
    expect(spawned).toHaveLength(0);
    expect(await Promise.all(prefetcher.start([SEG(2)]))).toEqual([true]);
    expect(prefetcher.start([])).toEqual([]);
    await until("the idle worker's stdin to close", () => stdinClosed() > 0);
    expect(stdinClosed()).toBe(1);
    expect(spawned).toHaveLength(1);
  });

  test("a segment asked for again while on its way is not sent twice", async () => {
    const { prefetcher, received } = await setup((s) => (s === SEG(2) ? "silent" : "ok"));
    const first = prefetcher.start([SEG(2)]);
    const again = prefetcher.start([SEG(2), SEG(3)]);
    expect(await again[1]).toBe(true);
    expect(received).toEqual([`prefetch ${SEG(2)}`, `prefetch ${SEG(3)}`]);
    // Both callers hear the same outcome.
    prefetcher.stop();
    expect(await Promise.all([...first, ...again])).toEqual([false, false, true]);
  });

  test("a prefetch that misses or fails is logged at info with the worker's reason", async () => {
    const { prefetcher, logs } = await setup((s) => (s === SEG(2) ? "missing" : "failed"));
    expect(await Promise.all(prefetcher.start([SEG(2), SEG(3)]))).toEqual([false, false]);
    const lines = logs.map((l) => JSON.parse(l)).filter((l) => l.msg === "prefetch missed");
    expect(lines).toEqual([
      expect.objectContaining({ level: "info", segment: SEG(2), reason: 'missing: {"root":"/store"}' }),
      expect.objectContaining({ level: "info", segment: SEG(3), reason: "failed: OSError: the disk is on fire" }),
    ]);
    prefetcher.stop();
  });

  test("a fetch goes to the same worker, to its destination, and comes back with the worker's answer", async () => {
    const answers: Record<string, Answer> = { [SEG(2)]: "ok", [SEG(3)]: "missing", "00000002.history": "failed" };
    const { prefetcher, spawned, received } = await setup((s) => answers[s] ?? "silent");
    const dest = join(base, "fetched");
    expect(await prefetcher.fetch(SEG(2), dest)).toMatchObject({ kind: "ok" });
    expect(readFileSync(dest, "utf8")).toBe(`fetched ${SEG(2)}`);
    expect(await prefetcher.fetch(SEG(3), join(base, "x"))).toMatchObject({
      kind: "missing",
      evidence: { root: "/store" },
    });
    expect(await prefetcher.fetch("00000002.history", join(base, "y"))).toMatchObject({
      kind: "failed",
      reason: "OSError: the disk is on fire",
      timedOut: false,
    });
    // An object store's miss: its WAL directory listed with WAL in it, or listed empty.
    answers["00000003.history"] = "located";
    answers["00000004.history"] = "empty";
    expect(await prefetcher.fetch("00000003.history", join(base, "v"))).toMatchObject({
      kind: "missing",
      evidence: { located: "s3://wale/archive/wal_005/00000003.history.lzo" },
    });
    expect(await prefetcher.fetch("00000004.history", join(base, "w"))).toMatchObject({
      kind: "missing",
      evidence: { empty: "s3://wale/archive/wal_005/00000004.history.lzo" },
    });
    expect(received).toEqual([
      `fetch ${SEG(2)}`,
      `fetch ${SEG(3)}`,
      "fetch 00000002.history",
      "fetch 00000003.history",
      "fetch 00000004.history",
    ]);
    expect(spawned).toHaveLength(1);
    // Gone without an answer: null, and the caller runs wal-fetch itself.
    const pending = prefetcher.fetch(SEG(9), join(base, "z"));
    prefetcher.stop();
    expect(await pending).toBe(null);
    expect(await prefetcher.fetch(SEG(2), dest)).toBe(null);
  });

  test("warm() starts the worker with no job; it ends when idle", async () => {
    const { prefetcher, spawned, stdinClosed } = await setup(() => "ok", {}, 50);
    prefetcher.warm();
    await until("the worker to start", () => spawned.length > 0);
    expect(spawned).toHaveLength(1);
    await until("the idle worker's stdin to close", () => stdinClosed() > 0);
    expect(stdinClosed()).toBe(1);
  });

  test("a worker that cannot be started is logged, and its segments fail", async () => {
    const { prefetcher, logs, runtime } = await setup(() => "ok");
    runtime.spawn = () => {
      throw new Error(`Executable not found in $PATH: "${python3}"`);
    };
    expect(await Promise.all(prefetcher.start([SEG(2)]))).toEqual([false]);
    const line = JSON.parse(logs.find((l) => l.includes("cannot start the prefetch worker")) ?? "{}");
    expect(line).toMatchObject({ level: "warn", argv0: python3 });
    expect(line.error).toContain("Executable not found");
  });

  test("after a worker that died, the next starts no sooner than the retry time: until then requests fetch for themselves", async () => {
    const { prefetcher, spawned, children, logs } = await setup(() => "ok", {}, 60_000, 300);
    expect(await Promise.all(prefetcher.start([SEG(2)]))).toEqual([true]);
    children[0]?.die(1, "ImportError: No module named wal_e\n");
    await until("the worker's death to be logged", () => logs.join("").includes("prefetch worker failed"));
    // Backing off: no worker, so a request is told to run wal-fetch (null), and a prefetch does not land.
    expect(await prefetcher.fetch(SEG(3), join(base, "spool", "fetched"))).toBeNull();
    expect(await Promise.all(prefetcher.start([SEG(4)]))).toEqual([false]);
    expect(spawned).toHaveLength(1);
    await new Promise((resolve) => setTimeout(resolve, 350));
    expect(await Promise.all(prefetcher.start([SEG(5)]))).toEqual([true]);
    expect(spawned).toHaveLength(2);
    expect(logs.filter((line) => line.includes("prefetch worker failed"))).toHaveLength(1);
    prefetcher.stop();
  });

  test("a worker that dies fails what it had, says why in the log, and the next segments start a new one", async () => {
    const { prefetcher, spawned, children, logs, received } = await setup((s) => (s === SEG(4) ? "ok" : "silent"));
    const lost = prefetcher.start([SEG(2), SEG(3)]);
    await until("the worker to have both segments", () => received.length === 2);
    children[0]?.die(1, "Traceback (most recent call last):\nImportError: No module named wal_e\n");
    expect(await Promise.all(lost)).toEqual([false, false]);
    expect(logs.join("")).toContain('"msg":"prefetch worker failed; requests fetch their files themselves"');
    expect(logs.join("")).toContain("ImportError: No module named wal_e");
    expect(await Promise.all(prefetcher.start([SEG(4)]))).toEqual([true]);
    expect(spawned).toHaveLength(2);
    prefetcher.stop();
  });

  test("a segment that takes longer than WALE_FETCH_TIMEOUT stops the worker", async () => {
    const { prefetcher, logs } = await setup(() => "silent", { WALE_FETCH_TIMEOUT: "1" });
    expect(await Promise.all(prefetcher.start([SEG(2)]))).toEqual([false]);
    expect(logs.join("")).toContain('"msg":"fetch timed out: stopping the prefetch worker');
    expect(logs.join("")).not.toContain("prefetch worker failed");
  });

  test("a prefetch is timed from when the worker takes it: one waiting longer than WALE_FETCH_TIMEOUT stops nothing", async () => {
    const { prefetcher, logs, spawned } = await setup((name) => (name === SEG(3) ? "queued" : "ok"), {
      WALE_FETCH_TIMEOUT: "1",
    });
    const [waiting] = prefetcher.start([SEG(3)]);
    let settled = false;
    void waiting?.then(() => (settled = true));
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(settled).toBe(false);
    // The same worker still serves, and nothing timed out.
    expect(await prefetcher.fetch(SEG(2), join(base, "spool", "fetched"))).toMatchObject({ kind: "ok" });
    expect(spawned).toHaveLength(1);
    expect(logs.join("")).not.toContain("timed out");
    prefetcher.stop();
    expect(await waiting).toBe(false);
  });

  test("a request's fetch is timed from when it is sent, taken or not", async () => {
    const { prefetcher, logs } = await setup(() => "queued", { WALE_FETCH_TIMEOUT: "1" });
    expect(await prefetcher.fetch(SEG(2), join(base, "spool", "fetched"))).toMatchObject({
      kind: "failed",
      timedOut: true,
    });
    expect(logs.join("")).toContain('"msg":"fetch timed out: stopping the prefetch worker');
  });

  test("turned away by a full queue: its segments fail at once, nothing more runs", async () => {
    const config = parseConfig({ PGDATA: join(base, "data"), WALE_BIN: waleBin, WALE_SPOOL_DIR: join(base, "spool") });
    const workers = fakeWorkers(() => "ok");
    const runner = new WaleRunner(workers.runtime, config.wale, new Limiter(1, 0));
    // A worker holds its slot while it lives, so a second one (another spool's) cannot start.
    const [first, second] = await Promise.all([1, 2].map(() => createPrefetcher(config, runner, quiet)));
    expect(await Promise.all(first?.start([SEG(2)]) ?? [])).toEqual([true]);
    expect(await Promise.all(second?.start([SEG(3)]) ?? [])).toEqual([false]);
    expect(workers.spawned).toHaveLength(1);
    first?.stop();
  });

  test("stop() kills it: what it had fails", async () => {
    const { prefetcher, logs, received } = await setup(() => "silent");
    const pending = prefetcher.start([SEG(2)]);
    await until("the worker to have the segment", () => received.length === 1);
    prefetcher.stop();
    expect(await Promise.all(pending)).toEqual([false]);
    expect(logs).toEqual([]);
  });
});

test("with WALE_MAX_CONCURRENCY=1 the worker would take the only slot: one process a segment", async () => {
  const config = parseConfig({ PGDATA: join(base, "data"), WALE_BIN: waleBin, WALE_MAX_CONCURRENCY: "1" });
  const prefetcher = await createPrefetcher(config, new WaleRunner(fakeRuntime().runtime, config.wale), quiet);
  expect(prefetcher?.description).toBe(`${waleBin} wal-prefetch, one process a segment`);
});

test("where WALE_BIN is no Python script, each segment gets its own wal-e wal-prefetch", async () => {
  const wrapper = join(base, "wal-e-wrapper");
  writeFileSync(wrapper, '#!/bin/sh\nexec /opt/wal-e/bin/wal-e "$@"\n');
  chmodSync(wrapper, 0o755);
  const config = parseConfig({ PGDATA: join(base, "data"), WALE_BIN: wrapper, WALE_SPOOL_DIR: join(base, "spool") });
  const fake = fakeRuntime((argv) => ({ exitCode: argv.at(-1) === SEG(3) ? 1 : 0 }));
  const prefetcher = await createPrefetcher(config, new WaleRunner(fake.runtime, config.wale), quiet);
  expect(prefetcher?.description).toBe(`${wrapper} wal-prefetch, one process a segment`);
  expect(await Promise.all(prefetcher?.start([SEG(2), SEG(3)]) ?? [])).toEqual([true, false]);
  expect(fake.spawned).toEqual([
    [wrapper, "--terse", "wal-prefetch", join(base, "spool"), SEG(2)],
    [wrapper, "--terse", "wal-prefetch", join(base, "spool"), SEG(3)],
  ]);
  const off = { ...config, spool: { ...config.spool, prefetch: 0 } };
  expect(await createPrefetcher(off, new WaleRunner(fake.runtime, config.wale), quiet)).toBe(null);
});
