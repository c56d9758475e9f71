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
import { asDbUser, makeStore, run, running, startSidecar, TOOLS, useScope, waitFor } from "../support/harness.ts";

const scope = useScope();

test("file store: /wal-push answers 200 after fsync of each object it pushed, wal_005/ and the store's root", async () => {
  const store = makeStore(scope);
  const pgdata = scope.tempDir("pgdata");
  const pgwal = join(pgdata, "pg_wal");
  const segments = ["000000010000000000000003", "000000010000000000000004"];
  await run(asDbUser(["mkdir", "-p", join(pgwal, "archive_status")]));
  for (const segment of segments) {
    await run(asDbUser(["dd", "if=/dev/urandom", `of=${join(pgwal, segment)}`, "bs=1M", "count=16", "status=none"]));
    await run(asDbUser(["touch", join(pgwal, "archive_status", `${segment}.ready`)]));
  }
  const trace = join(scope.tempDir("strace"), "fsync.txt");
  const sidecar = await startSidecar(
    scope,
    // --pool-size 2: WAL-E pushes the other .ready segment too, and marks it .done.
    { PGDATA: pgdata, WALE_FILE_PREFIX: store.prefix, WALE_PUSH_FLAGS: "--pool-size 2" },
    undefined,
    ["strace", "-f", "-qq", "-y", "-e", "trace=fsync,fdatasync", "-o", trace, TOOLS.sidecar, "serve"],
  );
  // SIGTERM to strace does not reach the sidecar: stop the sidecar itself, and strace ends with it.
  scope.defer(async () => {
    const children = readFileSync(`/proc/${sidecar.pid}/task/${sidecar.pid}/children`, "utf8").trim().split(/\s+/);
    for (const child of children.filter(Boolean)) process.kill(Number(child), "SIGTERM");
    await waitFor("strace to end with the sidecar", () => !running(sidecar.pid), 60_000);
  });
  const response = await fetch(`${sidecar.url}/wal-push/${segments[0]}`);
  expect([response.status, await response.text()]).toEqual([200, `archived ${segments[0]}\n`]);
  expect(store.walFiles()).toEqual(segments);

  const synced = readFileSync(trace, "utf8")
    .split("\n")
    .map((line) => /f(?:data)?sync\(\d+<([^>]*)>\)\s+= 0/.exec(line)?.[1])
    .filter((path) => path !== undefined);
  for (const segment of segments) expect(synced).toContain(join(store.dir, "wal_005", `${segment}.lzo`));
  expect(synced).toContain(join(store.dir, "wal_005"));
  expect(synced).toContain(store.dir);
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
