/**
 * Continuous archiving on PostgreSQL 15: archive_command is the real wget
 * calling the compiled sidecar, which runs the real WAL-E into a store, of
 * each kind (file://, and S3 on moto) for the round trip and for a timeline
 * history file, which is never overwritten.
 */
import { expect, test } from "bun:test";
import { chmodSync, existsSync } from "node:fs";
import { join } from "node:path";
import {
  archivedIn,
  asDbUser,
  bareDataDir,
  fileStore,
  run,
  STORES,
  type Store,
  segmentRange,
  startArchivingSource,
  startSidecar,
  storeOf,
  useScope,
  waitFor,
} from "../support/harness.ts";

const scope = useScope();

async function archivingPair<S extends Store>(store: S) {
  const { source: pg, sidecar } = await startArchivingSource(scope, store, 15);
  return { store, pg, sidecar };
}

test.each(STORES)(
  "%s store: every switched segment lands in the store through the sidecar",
  async (kind) => {
    const { store, pg, sidecar } = await archivingPair(await storeOf(kind, scope));
    await pg.sql("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 10000) g");
    const switched: string[] = [];
    for (let i = 0; i < 4; i++) switched.push(await pg.switchWal());

    await waitFor("the switched segments in the store", async () => {
      const archived = await store.walFiles();
      return switched.every((s) => archived.includes(s));
    });
    const segments = (await store.walFiles()).filter((f) => /^[0-9A-F]{24}$/.test(f));
    expect(segments).toEqual(segmentRange(segments[0] as string, switched[switched.length - 1] as string));

    // WAL-E's wal-push also uploads other segments it finds .ready and marks
    // them .done, so PostgreSQL may not call archive_command for each one.
    // The store can show a file before WAL-E has exited and the sidecar logged.
    const pushes = await waitFor("the pushes to be logged", () => {
      const logged = sidecar.requests().filter((r) => r.route === "/wal-push");
      return logged.length > 0 && logged;
    });
    expect(pushes.every((r) => r.status === 200 && r.exit === 0)).toBe(true);
    for (const push of pushes) expect(await store.walFiles()).toContain(push.file as string);
  },
  120_000,
);

test.each(STORES)(
  "%s store: an archived .history file is never overwritten: other bytes are a 500 naming the cause, the same bytes a 200",
  async (kind) => {
    const store = await storeOf(kind, scope);
    const { pgdata, pgwal } = await bareDataDir(scope);
    const history = join(pgwal, "00000002.history");
    const write = (text: string) => run(asDbUser(["sh", "-c", `printf '${text}' > ${history}`]));
    const sidecar = await startSidecar(scope, { PGDATA: pgdata, ...store.env });
    const push = async () => {
      const response = await fetch(`${sidecar.url}/wal-push/00000002.history`);
      return [response.status, await response.text()] as const;
    };
    // Production's timeline switch.
    await write("1\\t0/3000000\\tno recovery target specified\\n");
    expect(await push()).toEqual([200, "archived 00000002.history\n"]);
    expect(await store.walFiles()).toEqual(["00000002.history"]);
    const archived = await store.read("wal_005/00000002.history.lzo");
    // A clone restored from the same archive and promoted: its own 00000002.history.
    await write("1\\t0/5000000\\tno recovery target specified\\n");
    const [status, body] = await push();
    expect(status).toBe(500);
    expect(body).toContain("the archive already holds a different 00000002.history");
    expect((await store.read("wal_005/00000002.history.lzo")).equals(archived)).toBe(true);
    // The same bytes again (an archiver retrying after a lost answer): 200.
    await write("1\\t0/3000000\\tno recovery target specified\\n");
    expect((await push())[0]).toBe(200);
  },
  120_000,
);

// A file store only: a directory WAL-E may not write to is a store that
// refuses writes while it still lists; moto has no such switch.

test("an unwritable store fails the archive_command, keeps .ready, and catches up with no gap", async () => {
  const { store, pg, sidecar } = await archivingPair(fileStore(scope));
  const first = await pg.switchWal();
  await archivedIn(store, first);

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
  await archivedIn(store, last, 90_000);
  expect(store.walFiles()).toContain(blocked);
  expect(store.walFiles().filter((f) => f >= first && /^[0-9A-F]{24}$/.test(f))).toEqual(segmentRange(first, last));
  await waitFor(
    "PostgreSQL to drop its .ready",
    () => !existsSync(join(pg.pgdata, "pg_wal/archive_status", `${blocked}.ready`)),
  );
}, 180_000);
