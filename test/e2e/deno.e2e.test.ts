/**
 * The same sidecar on Deno 2: `deno run src/main.deno.ts serve` archives a
 * real segment from PostgreSQL 15, through the real wget and WAL-E, and
 * streams segments back, prefetched by WAL-E's Python worker.
 */
import { expect, test } from "bun:test";
import { dirname, join, resolve } from "node:path";
import { archivedIn, fileStore, startArchivingSource, TOOLS, useScope, waitFor } from "../support/harness.ts";

const scope = useScope();
const ROOT = resolve(import.meta.dir, "../..");

test("a segment archived through the sidecar running on Deno is in the store", async () => {
  const store = fileStore(scope);
  const deno = [TOOLS.deno, "run", "-A", "--config", join(ROOT, "deno.json"), join(ROOT, "src/main.deno.ts"), "serve"];
  const env = { DENO_DIR: scope.tempDir("deno"), DENO_NO_UPDATE_CHECK: "1" };
  const { source: pg, sidecar, url } = await startArchivingSource(scope, store, 15, { env, command: deno });
  expect(sidecar.output()).toContain('"version"');

  const segment = await pg.switchWal();
  await archivedIn(store, segment);
  const pushes = await waitFor("the push to be logged", () => {
    const logged = sidecar.requests().filter((r) => r.route === "/wal-push" && r.status === 200);
    return logged.length > 0 && logged;
  });
  expect(pushes.every((r) => r.exit === 0)).toBe(true);
  expect(store.walFiles()).toContain(pushes[0]?.file as string);

  // Streamed back: the first through wal-fetch, the next from the prefetch
  // worker, which the Deno runtime feeds through a pipe to its stdin.
  const [first, second] = [await pg.switchWal(), await pg.switchWal()];
  await archivedIn(store, second);
  expect(sidecar.output()).toContain(`"prefetching":"one ${dirname(TOOLS.wale)}/python3 process for every fetch`);
  for (const segment of [first, second]) {
    const response = await fetch(`${url}/wal/${segment}`);
    expect(response.status).toBe(200);
    const archived = Bun.spawnSync(["lzop", "-dc", join(store.dir, "wal_005", `${segment}.lzo`)]).stdout;
    expect(archived.length).toBe(16 * 1024 * 1024);
    expect(Buffer.from(await response.arrayBuffer()).equals(archived)).toBe(true);
  }
  const streamed = sidecar.requests().filter((r) => r.route === "/wal");
  expect(streamed.map((r) => [r.file, r.prefetched ?? false])).toEqual([
    [first, false],
    [second, true],
  ]);

  await sidecar.stop();
  expect(sidecar.output()).toContain('"msg":"stopping","signal":"SIGTERM"');
}, 120_000);
