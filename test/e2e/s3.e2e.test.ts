/**
 * WAL-E's S3 backend (boto 2) through the sidecar, against an S3 API on
 * loopback (moto's server): archiving from PostgreSQL 15, the not-found rule
 * that a restore_command's safety rests on, and segments streamed back
 * through the prefetch worker, byte for byte what `wal-e wal-fetch` gives.
 */
import { expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  archiveThrough,
  freePort,
  makeS3Store,
  nextSegment,
  run,
  startPostgres,
  startSidecar,
  TOOLS,
  useScope,
  waitFor,
} from "../support/harness.ts";

const scope = useScope();

test("on S3: archived, streamed back through the prefetch worker, and an absence told from a missing bucket", async () => {
  const s3 = await makeS3Store(scope);
  const port = freePort();
  const url = `http://127.0.0.1:${port}`;
  const pg = await startPostgres(scope, { version: 15, conf: ["archive_mode = on", archiveThrough(url)] });
  const sidecar = await startSidecar(scope, { PGDATA: pg.pgdata, ...s3.env }, port);
  const segments = [await pg.switchWal(), await pg.switchWal(), await pg.switchWal()];
  // WAL-E's wal-push also uploads other segments that are ready, and marks
  // them done: PostgreSQL's archive_status says what is archived.
  const done = (segment: string) => existsSync(join(pg.pgdata, "pg_wal", "archive_status", `${segment}.done`));
  await waitFor("the three segments archived", () => segments.every(done));
  const pushes = sidecar.requests().filter((r) => r.route === "/wal-push");
  expect(pushes.length > 0 && pushes.every((r) => r.status === 200)).toBe(true);

  // Streamed back: the first by wal-fetch, the next two from the prefetch worker.
  const waleEnv = { PATH: process.env.PATH ?? "", WALE_LOG_DESTINATION: "stderr", ...s3.env };
  const direct = scope.tempDir("direct");
  for (const segment of segments) {
    const response = await fetch(`${url}/wal/${segment}`);
    expect(response.status).toBe(200);
    await run([TOOLS.wale, "--terse", "wal-fetch", "-p=0", segment, join(direct, segment)], { env: waleEnv });
    expect(Buffer.from(await response.arrayBuffer()).equals(readFileSync(join(direct, segment)))).toBe(true);
  }
  const streamed = sidecar.requests().filter((r) => r.route === "/wal");
  expect(streamed.map((r) => r.prefetched ?? false)).toEqual([false, true, true]);

  // Past the end of the archive: a confirmed absence.
  const past = nextSegment(segments[2] as string);
  expect((await fetch(`${url}/wal/${past}`)).status).toBe(404);
  const missing = await fetch(`${url}/wal/${past}?missing=ok`);
  expect([missing.status, missing.headers.get("x-wal-missing")]).toEqual([200, "true"]);

  // A bucket that is not there: WAL-E's wal-fetch says just what it says of
  // a missing object (exit 1, "could no longer locate object" at INFO), but
  // the store does not list, so it is a failure, never "missing".
  const typo = await startSidecar(scope, {
    PGDATA: pg.pgdata,
    ...s3.env,
    WALE_S3_PREFIX: "s3://no-such-bucket/archive",
  });
  const failed = await fetch(`${typo.url}/wal/${segments[0]}?missing=ok`);
  expect(failed.status).toBe(500);
  expect(await failed.text()).toContain("WAL-E exited with code 1");
  expect(typo.requests().find((r) => r.route === "/wal")).toMatchObject({ status: 500, exit: 1 });
}, 120_000);
