/**
 * What the file:// store promises: a 200 from /wal-push only once the
 * objects WAL-E wrote, and the directories that name them, are fsynced
 * (WAL-E 1.1.1 writes in place and never syncs). Seen from the outside:
 * the compiled sidecar runs under strace, which prints every fsync with
 * the path of its file.
 */
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { asDbUser, makeStore, run, startSidecar, startTracedSidecar, useScope } from "../support/harness.ts";

const scope = useScope();

/** A PGDATA whose pg_wal holds `segments` (16 MiB of noise each), every one .ready. */
async function readySegments(segments: string[]) {
  const pgdata = scope.tempDir("pgdata");
  const pgwal = join(pgdata, "pg_wal");
  await run(asDbUser(["mkdir", "-p", join(pgwal, "archive_status")]));
  for (const segment of segments) {
    await run(asDbUser(["dd", "if=/dev/urandom", `of=${join(pgwal, segment)}`, "bs=1M", "count=16", "status=none"]));
    await run(asDbUser(["touch", join(pgwal, "archive_status", `${segment}.ready`)]));
  }
  return { pgdata, pgwal };
}

test("file store: /wal-push answers 200 after fsync of its object, wal_005/ and the store's root, and a syncfs of the store for the other segments WAL-E pushed", async () => {
  const store = makeStore(scope);
  const segments = ["000000010000000000000003", "000000010000000000000004"];
  const { pgdata } = await readySegments(segments);
  const { sidecar, synced } = await startTracedSidecar(scope, {
    PGDATA: pgdata,
    WALE_FILE_PREFIX: store.prefix,
    // --pool-size 2: WAL-E pushes the other .ready segment too, and marks it .done.
    WALE_PUSH_FLAGS: "--pool-size 2",
  });
  const response = await fetch(`${sidecar.url}/wal-push/${segments[0]}`);
  expect([response.status, await response.text()]).toEqual([200, `archived ${segments[0]}\n`]);
  expect(store.walFiles()).toEqual(segments);
  const calls = synced();
  const paths = calls.map((call) => call.path);
  expect(paths).toContain(join(store.dir, "wal_005", `${segments[0]}.lzo`));
  expect(paths).toContain(join(store.dir, "wal_005"));
  expect(paths).toContain(store.dir);
  // The other segment: no list names it for sure, the syncfs of its file system covers it.
  expect(calls).toContainEqual({ call: "syncfs", path: store.dir });
}, 120_000);

test("file store: a wal-push whose own segment fails still syncs the store for the segments WAL-E pushed and marked .done", async () => {
  const store = makeStore(scope);
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

test("an archived .history file is never overwritten: other bytes are a 500 naming the cause, the same bytes a 200", async () => {
  const store = makeStore(scope);
  const pgdata = scope.tempDir("pgdata");
  const pgwal = join(pgdata, "pg_wal");
  await run(asDbUser(["mkdir", "-p", join(pgwal, "archive_status")]));
  const history = join(pgwal, "00000002.history");
  const write = (text: string) => run(asDbUser(["sh", "-c", `printf '${text}' > ${history}`]));
  const sidecar = await startSidecar(scope, { PGDATA: pgdata, WALE_FILE_PREFIX: store.prefix });
  const push = async () => {
    const response = await fetch(`${sidecar.url}/wal-push/00000002.history`);
    return [response.status, await response.text()] as const;
  };
  // Production's timeline switch.
  await write("1\\t0/3000000\\tno recovery target specified\\n");
  expect(await push()).toEqual([200, "archived 00000002.history\n"]);
  expect(store.walFiles()).toEqual(["00000002.history"]);
  const archived = readFileSync(join(store.dir, "wal_005", "00000002.history.lzo"));
  // A clone restored from the same archive and promoted: its own 00000002.history.
  await write("1\\t0/5000000\\tno recovery target specified\\n");
  const [status, body] = await push();
  expect(status).toBe(500);
  expect(body).toContain("the archive already holds a different 00000002.history");
  expect(readFileSync(join(store.dir, "wal_005", "00000002.history.lzo")).equals(archived)).toBe(true);
  // The same bytes again (an archiver retrying after a lost answer): 200.
  await write("1\\t0/3000000\\tno recovery target specified\\n");
  expect((await push())[0]).toBe(200);
}, 120_000);

test("file store: a .history push of the bytes the archive holds answers 200 only after fsync of that object", async () => {
  const store = makeStore(scope);
  const pgdata = scope.tempDir("pgdata");
  const pgwal = join(pgdata, "pg_wal");
  await run(asDbUser(["mkdir", "-p", join(pgwal, "archive_status")]));
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
