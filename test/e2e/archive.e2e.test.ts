/**
 * Continuous archiving on PostgreSQL 15: archive_command is the real wget
 * calling the compiled sidecar, which runs the real WAL-E into a file store.
 */
import { expect, test } from "bun:test";
import { chmodSync, existsSync } from "node:fs";
import { join } from "node:path";
import {
  makeStore,
  segmentRange,
  startArchivingPostgres,
  startSidecar,
  useScope,
  waitFor,
} from "../support/harness.ts";

const scope = useScope();

async function archivingPair() {
  const store = makeStore(scope);
  const { pg, port } = await startArchivingPostgres(scope, { version: 15 });
  const sidecar = await startSidecar(scope, { PGDATA: pg.pgdata, WALE_FILE_PREFIX: store.prefix }, port);
  return { store, pg, sidecar };
}

test("every switched segment lands in the store through the sidecar", async () => {
  const { store, pg, sidecar } = await archivingPair();
  await pg.sql("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 10000) g");
  const switched: string[] = [];
  for (let i = 0; i < 4; i++) switched.push(await pg.switchWal());

  await waitFor("the switched segments in the store", () => switched.every((s) => store.walFiles().includes(s)));
  const segments = store.walFiles().filter((f) => /^[0-9A-F]{24}$/.test(f));
  expect(segments).toEqual(segmentRange(segments[0] as string, switched[switched.length - 1] as string));

  // WAL-E's wal-push also uploads other segments it finds .ready and marks
  // them .done, so PostgreSQL may not call archive_command for each one.
  // The store can show a file before WAL-E has exited and the sidecar logged.
  const pushes = await waitFor("the pushes to be logged", () => {
    const logged = sidecar.requests().filter((r) => r.route === "/wal-push");
    return logged.length > 0 && logged;
  });
  expect(pushes.every((r) => r.status === 200 && r.exit === 0)).toBe(true);
  for (const push of pushes) expect(store.walFiles()).toContain(push.file as string);
}, 120_000);

test("an unwritable store fails the archive_command, keeps .ready, and catches up with no gap", async () => {
  const { store, pg, sidecar } = await archivingPair();
  const first = await pg.switchWal();
  await waitFor("the first segment in the store", () => store.walFiles().includes(first));

  const walDir = join(store.dir, "wal_005");
  chmodSync(walDir, 0o500);
  let blocked: string;
  try {
    blocked = await pg.switchWal();
    await waitFor(
      "a failed archive attempt",
      async () => Number(await pg.sql("SELECT failed_count FROM pg_stat_archiver")) > 0,
    );
    expect(existsSync(join(pg.pgdata, "pg_wal/archive_status", `${blocked}.ready`))).toBe(true);
    expect(store.walFiles()).not.toContain(blocked);
    const failures = sidecar.requests().filter((r) => r.file === blocked && r.status === 500);
    expect(failures.length).toBeGreaterThan(0);
    expect(String(failures[0]?.stderr)).toContain("Permission denied");
  } finally {
    chmodSync(walDir, 0o700);
  }

  // A new segment wakes the archiver, which retries the one it kept.
  const last = await pg.switchWal();
  await waitFor("archiving to catch up", () => store.walFiles().includes(last), 90_000);
  expect(store.walFiles()).toContain(blocked);
  expect(store.walFiles().filter((f) => f >= first && /^[0-9A-F]{24}$/.test(f))).toEqual(segmentRange(first, last));
  await waitFor(
    "PostgreSQL to drop its .ready",
    () => !existsSync(join(pg.pgdata, "pg_wal/archive_status", `${blocked}.ready`)),
  );
}, 180_000);
