/**
 * What the file:// store promises: a 200 from /wal-push only once the
 * objects WAL-E wrote, and the directories that name them, are fsynced
 * (WAL-E 1.1.1 writes in place and never syncs): each object WAL-E's log
 * names, or, when the log cannot be the whole list, the store's whole file
 * system (src/archive/wale-archive.ts). Seen from the outside:
 * the compiled sidecar runs under strace, which prints every fsync with
 * the path of its file. (That an archived .history is never overwritten,
 * which is not about fsync, is in archive.e2e.test.ts.)
 */
import { expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { asDbUser, bareDataDir, fileStore, run, startTracedSidecar, useScope, waitFor } from "../support/harness.ts";

const scope = useScope();

/** A PGDATA whose pg_wal holds `segments` (16 MiB of noise each), every one .ready. */
async function readySegments(segments: string[]) {
  const { pgdata, pgwal } = await bareDataDir(scope);
  await moreReadySegments(pgwal, segments);
  return { pgdata, pgwal };
}

async function moreReadySegments(pgwal: string, segments: string[]) {
  for (const segment of segments) {
    await run(asDbUser(["dd", "if=/dev/urandom", `of=${join(pgwal, segment)}`, "bs=1M", "count=16", "status=none"]));
    await run(asDbUser(["touch", join(pgwal, "archive_status", `${segment}.ready`)]));
  }
}

test("file store: /wal-push answers 200 after fsync of its object, of the other segment WAL-E pushed and marked .done, of wal_005/ and of the store's root, with no syncfs", async () => {
  const store = fileStore(scope);
  const first = "000000010000000000000002";
  const segments = ["000000010000000000000003", "000000010000000000000004"];
  const { pgdata, pgwal } = await readySegments([first]);
  const { sidecar, synced } = await startTracedSidecar(scope, {
    PGDATA: pgdata,
    WALE_FILE_PREFIX: store.prefix,
    // --pool-size 2: WAL-E pushes another .ready segment too, and marks it .done.
    WALE_PUSH_FLAGS: "--pool-size 2",
  });
  // As it starts, in the background, the sidecar syncs the store's file system (what one killed before its sync left behind).
  await waitFor("the start-up syncfs", () =>
    synced().some((call) => call.call === "syncfs" && call.path === store.dir),
  );
  expect((await fetch(`${sidecar.url}/wal-push/${first}`)).status).toBe(200);
  // As PostgreSQL does after a 200 (WAL-E leaves the asked-for segment's status to it).
  const status = join(pgwal, "archive_status");
  await run(asDbUser(["mv", join(status, `${first}.ready`), join(status, `${first}.done`)]));
  const before = synced().length;
  await moreReadySegments(pgwal, segments);
  const response = await fetch(`${sidecar.url}/wal-push/${segments[0]}`);
  expect([response.status, await response.text()]).toEqual([200, `archived ${segments[0]}\n`]);
  expect(store.walFiles()).toEqual([first, ...segments]);
  expect(readdirSync(status)).toContain(`${segments[1]}.done`);
  const calls = synced().slice(before);
  const paths = calls.map((call) => call.path);
  // The other segment too: real WAL-E's log named it (src/wale/push-log.ts).
  for (const segment of segments) expect(paths).toContain(join(store.dir, "wal_005", `${segment}.lzo`));
  expect(paths).toContain(join(store.dir, "wal_005"));
  expect(paths).toContain(store.dir);
  expect(calls.filter((call) => call.call === "syncfs")).toEqual([]);
  expect(sidecar.requests()).toContainEqual(expect.objectContaining({ route: "/wal-push", status: 200, synced: 2 }));
}, 120_000);

test("file store: a wal-push whose own segment fails still syncs the store for the segments WAL-E pushed and marked .done", async () => {
  const store = fileStore(scope);
  const segments = ["000000010000000000000003", "000000010000000000000004"];
  const { pgdata, pgwal } = await readySegments(segments);
  // WAL-E cannot read the requested segment; it pushes the other one from archive_status.
  await run(asDbUser(["chmod", "000", join(pgwal, segments[0] as string)]));
  const { sidecar, synced } = await startTracedSidecar(scope, {
    PGDATA: pgdata,
    WALE_FILE_PREFIX: store.prefix,
    WALE_PUSH_FLAGS: "--pool-size 2",
  });
  const response = await fetch(`${sidecar.url}/wal-push/${segments[0]}`);
  expect(response.status).toBe(500);
  await response.text();
  expect(synced()).toContainEqual({ call: "syncfs", path: store.dir });
}, 120_000);

test("file store: a .history push of the bytes the archive holds answers 200 only after fsync of that object", async () => {
  const store = fileStore(scope);
  const { pgdata, pgwal } = await readySegments([]);
  await run(
    asDbUser([
      "sh",
      "-c",
      `printf '1\\t0/3000000\\tno recovery target specified\\n' > ${join(pgwal, "00000002.history")}`,
    ]),
  );
  const { sidecar, synced } = await startTracedSidecar(scope, { PGDATA: pgdata, WALE_FILE_PREFIX: store.prefix });
  const push = () => fetch(`${sidecar.url}/wal-push/00000002.history`).then((r) => r.text());
  expect(await push()).toBe("archived 00000002.history\n");
  const object = join(store.dir, "wal_005", "00000002.history.lzo");
  const before = synced().filter((call) => call.path === object).length;
  expect(await push()).toBe("archived 00000002.history (the archive holds these bytes)\n");
  expect(synced().filter((call) => call.path === object).length).toBe(before + 1);
}, 120_000);
