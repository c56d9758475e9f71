/**
 * Base backup and restore on PostgreSQL 14: /backup-push through the sidecar,
 * backup-fetch through the binary's wal-e passthrough, and recovery with
 * restore_command through the sidecar's /wal-fetch?dest=%p.
 */
import { expect, test } from "bun:test";
import { join } from "node:path";
import {
  archivedIn,
  asDbUser,
  checksum,
  fileStore,
  restoreLatest,
  run,
  script,
  startArchivingSource,
  TOOLS,
  useScope,
  waleEnv,
} from "../support/harness.ts";

const scope = useScope();

test("backup-push, backup-list, then a restore from backup and WAL has exactly the source's rows", async () => {
  const store = fileStore(scope);
  // backup-push calls psql, which finds the server through the PG* variables.
  const { source, url } = await startArchivingSource(scope, store, 14);
  await source.sql("CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 1000) g");

  // pg_stop_backup waits for its WAL to be archived, through the same sidecar,
  // while this request is still open.
  const backup = await fetch(`${url}/backup-push`);
  expect(await backup.text()).toStartWith("backup complete");
  expect(backup.status).toBe(200);

  const list = await run(asDbUser([TOOLS.sidecar, "wal-e", "backup-list"]), { env: waleEnv(store) });
  expect(list.stdout).toMatch(/^base_[0-9A-F]{24}_[0-9]{8}\s/m);

  await source.sql("INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1001, 5000) g");
  const last = await source.switchWal();
  await archivedIn(store, last);
  const expected = await checksum(source, "t");
  await source.stop();

  const { pg: restored, fetcher } = await restoreLatest(scope, store, source);

  expect(await checksum(restored, "t")).toBe(expected);
  expect(expected.startsWith("5000:")).toBe(true);
  const fetches = fetcher.requests();
  expect(fetches.some((r) => r.route === "/wal-fetch" && r.status === 200)).toBe(true);
  // Recovery asks past the end of the archive: a confirmed absence (missing=ok), not an error.
  expect(fetches.some((r) => r.route === "/wal-fetch" && r.status === 200 && r.missing === true)).toBe(true);
  expect(fetches.every((r) => r.status === 200)).toBe(true);
}, 240_000);

test("WAL-E failing during recovery does not end it early: restore_command retries, nothing is lost", async () => {
  const store = fileStore(scope);
  const { source, url } = await startArchivingSource(scope, store, 14);
  await source.sql("CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 1000) g; CHECKPOINT");
  expect((await fetch(`${url}/backup-push`)).status).toBe(200);
  for (let i = 0; i < 4; i++) {
    await source.sql(
      `INSERT INTO t SELECT g, md5(g::text) FROM generate_series(${1001 + i * 1000}, ${2000 + i * 1000}) g`,
    );
    await source.switchWal();
  }
  const last = await source.switchWal();
  await archivedIn(store, last);
  const expected = await checksum(source, "t");
  await source.stop();

  // The 2nd and 3rd wal-fetch fail as a broken store would; the others are real WAL-E.
  const dir = scope.tempDir("flaky");
  const count = join(dir, "count");
  const flaky = script(
    dir,
    "flaky-wal-e",
    `case " $* " in *" wal-fetch "*) n=$(($(cat ${count} 2>/dev/null || echo 0) + 1)); echo $n > ${count}
  if [ $n -eq 2 ] || [ $n -eq 3 ]; then echo "wal_e.main   ERROR    MSG: simulated store failure" >&2; exit 1; fi;; esac
exec ${TOOLS.wale} "$@"`,
  );
  const { pg: restored, fetcher } = await restoreLatest(scope, store, source, { WALE_BIN: flaky, WALE_PREFETCH: "0" });

  expect(await checksum(restored, "t")).toBe(expected);
  expect(expected.startsWith("5000:")).toBe(true);
  const failures = fetcher.requests().filter((r) => r.route === "/wal-fetch" && r.status === 500);
  expect(failures).toHaveLength(2);
}, 240_000);
