/**
 * `serve`'s shutdown on a fake runtime: a backup in flight waits in
 * pg_backup_stop for its WAL to be archived, so /wal-push stays open while
 * it runs; everything else guarded answers 503 at once.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serve } from "../../src/cli/serve.ts";
import type { Child, Runtime } from "../../src/runtime/types.ts";
import { fakeRuntime, fakeWaleBin } from "../support/fake-runtime.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const dir = realpathSync(mkdtempSync(join(tmpdir(), "serve-")));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const SEG = "000000010000000000000002";

test("SIGTERM during a backup: /wal-push is served until the backup ends, then 503; the rest 503 at once", async () => {
  const pgdata = join(dir, "data");
  mkdirSync(join(pgdata, "pg_wal"), { recursive: true });
  writeFileSync(join(pgdata, "pg_wal", SEG), "wal");
  writeFileSync(join(pgdata, "PG_VERSION"), "17\n");
  const spool = join(dir, "spool");
  mkdirSync(spool);
  const wale = fakeWaleBin(spool);

  // The backup worker (WAL-E's Python running src/workers/backup.py) stays in pg_backup_stop until let go.
  let endWorker: (code: number) => void = () => {};
  const fake = fakeRuntime({ exitCode: 0 });
  const runtime: Runtime = {
    ...fake.runtime,
    spawn(argv, options): Child {
      const child = fake.runtime.spawn(argv, options);
      if (!argv.includes("-c")) return child;
      return { ...child, exited: new Promise<number>((resolve) => (endWorker = resolve)) };
    },
  };
  let handler: (request: Request) => Promise<Response> = async () => new Response(null, { status: 599 });
  const signals: Array<() => void> = [];
  const out: string[] = [];
  const exit = serve.run(
    {
      ...runtime,
      env: () => ({
        PGDATA: pgdata,
        WALE_BIN: wale,
        WALE_SPOOL_DIR: spool,
        WALE_PREFETCH: "0",
        WALE_LISTEN_HOST: "127.0.0.1",
        WALE_SHUTDOWN_GRACE: "30",
      }),
      serve: (fetch) => {
        handler = fetch as typeof handler;
        return { port: 8080, stop: async () => {} };
      },
      onSignal: (_signal, listener) => void signals.push(listener),
      stdout: (text) => void out.push(text),
    },
    [],
  );
  for (let i = 0; i < 200 && !out.join("").includes('"listening"'); i++) await sleep(10);
  const get = async (path: string) => (await handler(new Request(`http://sidecar${path}`))).status;

  expect(await get("/backup-push?wait=false")).toBe(202);
  for (let i = 0; i < 200 && !fake.spawned.some((argv) => argv.includes("-c")); i++) await sleep(10);
  for (const signal of signals) signal();
  await sleep(20);
  expect(await get(`/wal-push/${SEG}`)).toBe(200);
  expect(await get(`/wal-push/pg_wal/${SEG}`)).toBe(200);
  expect(await get(`/wal-fetch/${SEG}`)).toBe(503);
  expect(await get("/backup-push?wait=false")).toBe(503);
  expect(await get("/readyz")).toBe(503);

  // The backup ends: from then on /wal-push is refused too, and the shutdown finishes.
  endWorker(1);
  for (let i = 0; i < 200 && !out.join("").includes('"backup ended"'); i++) await sleep(10);
  await sleep(10);
  expect(await get(`/wal-push/${SEG}`)).toBe(503);
  expect(await exit).toBe(0);
  expect(fake.spawned.filter((argv) => argv.includes("wal-push")).length).toBe(2);
}, 30_000);
