/**
 * WAL-E's S3 backend (boto 2) through the sidecar, against an S3 API on
 * loopback (moto's server): archiving from PostgreSQL 15, the not-found rule
 * that a restore_command's safety rests on, and segments streamed back
 * through the prefetch worker, byte for byte what `wal-e wal-fetch` gives.
 */
import { expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  nextSegment,
  run,
  type Store,
  s3Store,
  startArchivingSource,
  startRestoreSide,
  startSidecar,
  TOOLS,
  useScope,
  waitFor,
  waleEnv,
} from "../support/harness.ts";

const scope = useScope();

/** Pushes a segment of 16 MB into `s3` with WAL-E itself (no sidecar); the file pushed. */
async function pushedByWale(s3: Store, segment: string): Promise<string> {
  const source = scope.tempDir("source");
  mkdirSync(join(source, "archive_status"));
  writeFileSync(join(source, segment), Buffer.alloc(16 * 1024 * 1024, 7));
  await run([TOOLS.wale, "--terse", "wal-push", join(source, segment)], { env: waleEnv(s3) });
  return join(source, segment);
}

test("on S3: archived, streamed back through the prefetch worker, and an absence told from a missing bucket", async () => {
  const s3 = await s3Store(scope);
  const { source: pg, sidecar, url } = await startArchivingSource(scope, s3, 15);
  const segments = [await pg.switchWal(), await pg.switchWal(), await pg.switchWal()];
  // WAL-E's wal-push also uploads other segments that are ready, and marks
  // them done: PostgreSQL's archive_status says what is archived.
  const done = (segment: string) => existsSync(join(pg.pgdata, "pg_wal", "archive_status", `${segment}.done`));
  await waitFor("the three segments archived", () => segments.every(done));
  const pushes = sidecar.requests().filter((r) => r.route === "/wal-push");
  expect(pushes.length > 0 && pushes.every((r) => r.status === 200)).toBe(true);

  // Streamed back: the first by wal-fetch, the next two from the prefetch worker.
  const env = waleEnv(s3);
  const direct = scope.tempDir("direct");
  for (const segment of segments) {
    const response = await fetch(`${url}/wal/${segment}`);
    expect(response.status).toBe(200);
    await run([TOOLS.wale, "--terse", "wal-fetch", "-p=0", segment, join(direct, segment)], { env });
    expect(Buffer.from(await response.arrayBuffer()).equals(readFileSync(join(direct, segment)))).toBe(true);
  }
  const streamed = sidecar.requests().filter((r) => r.route === "/wal");
  expect(streamed.map((r) => r.prefetched ?? false)).toEqual([false, true, true]);

  // Past the end of the archive: a confirmed absence.
  const past = nextSegment(segments[2] as string);
  expect((await fetch(`${url}/wal/${past}`)).status).toBe(404);
  const missing = await fetch(`${url}/wal/${past}?missing=ok`);
  expect([missing.status, missing.headers.get("x-wal-missing")]).toEqual([200, "true"]);

  // A bucket that is not there: WAL-E says just what it says of a missing
  // object ("could no longer locate object" at INFO), but the store does not
  // list, so it is a failure, never "missing".
  const typo = await startSidecar(scope, {
    PGDATA: pg.pgdata,
    ...s3.env,
    WALE_S3_PREFIX: "s3://no-such-bucket/archive",
  });
  const failed = await fetch(`${typo.url}/wal/${segments[0]}?missing=ok`);
  expect(failed.status).toBe(500);
  expect(await failed.text()).toContain("NoSuchBucket");
  expect(typo.requests().find((r) => r.route === "/wal")).toMatchObject({ status: 500 });

  // A prefix with a typo in the bucket that is there: it lists, empty. The
  // store's WAL directory holds nothing, so that is a failure too.
  const misspelt = await startSidecar(scope, {
    PGDATA: pg.pgdata,
    ...s3.env,
    WALE_S3_PREFIX: `${s3.env.WALE_S3_PREFIX}-typo`,
  });
  const empty = await fetch(`${misspelt.url}/wal/${segments[0]}?missing=ok`);
  expect(empty.status).toBe(500);
  expect(await empty.text()).toContain("holds nothing: is the prefix right?");
  expect(empty.headers.get("x-wal-missing")).toBeNull();
}, 120_000);

/**
 * A loopback proxy in front of moto that can stop answering as S3 does for
 * a working key: "expired" answers what S3 answers once an STS session
 * token has expired (400 ExpiredToken), "gone" what it answers for a bucket
 * that is not there (404 NoSuchBucket), to every request.
 */
function s3Proxy(target: string) {
  const state = { mode: "ok" as "ok" | "expired" | "gone" };
  const error = (status: number, code: string) =>
    new Response(
      `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${code}</Message></Error>`,
      {
        status,
        headers: { "content-type": "application/xml" },
      },
    );
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(request) {
      if (state.mode === "expired") return error(400, "ExpiredToken");
      if (state.mode === "gone") return error(404, "NoSuchBucket");
      const url = new URL(request.url);
      return fetch(`${target}${url.pathname}${url.search}`, { method: request.method, headers: request.headers });
    },
  });
  scope.defer(() => server.stop(true));
  return { state, endpoint: `http+path://127.0.0.1:${server.port}` };
}

test("on S3: credentials that stop working mid-restore never make an archived segment 'missing'", async () => {
  const s3 = await s3Store(scope);
  // One segment in the archive, pushed by WAL-E itself.
  const segment = "000000010000000000000003";
  const pushed = await pushedByWale(s3, segment);

  const proxy = s3Proxy(s3.endpoint);
  const {
    pgdata,
    sidecar,
    restore: restoreCommandFor,
  } = await startRestoreSide(scope, { ...s3.env, WALE_S3_ENDPOINT: proxy.endpoint, WALE_FETCH_TIMEOUT: "5" });

  // While the credentials work: the segment comes back, the next one is confirmed absent.
  expect(await restoreCommandFor(segment)).toBe(0);
  expect(readFileSync(join(pgdata, "pg_wal", "RECOVERYXLOG")).equals(readFileSync(pushed))).toBe(true);
  expect(await restoreCommandFor(nextSegment(segment))).toBe(1);

  // Now S3 says "no such bucket" to everything: WAL-E's wal-fetch says what it
  // says of a missing object, but the store no longer lists. A listing from a
  // moment ago must not vouch for it.
  proxy.state.mode = "gone";
  const gone = await fetch(`${sidecar.url}/wal-fetch/${segment}?dest=pg_wal/RECOVERYXLOG&missing=ok`);
  expect(gone.status).toBe(500);
  expect(await restoreCommandFor(segment)).toBe(255);

  // An expired session token: WAL-E 1.1.1 retries it (its ExpiredToken branch
  // raises an AttributeError under boto 2.49), until the fetch time limit.
  proxy.state.mode = "expired";
  const expired = await fetch(`${sidecar.url}/wal-fetch/${segment}?dest=pg_wal/RECOVERYXLOG&missing=ok`);
  expect([expired.status, (await expired.text()).includes("timed out")]).toEqual([504, true]);
  expect(sidecar.requests().filter((r) => r.missing === true)).toHaveLength(1);
}, 180_000);

test("on S3: a misspelled or empty prefix in a bucket that is there is never 'missing'; the right one still is past the end", async () => {
  const s3 = await s3Store(scope);
  const segment = "000000010000000000000001";
  await pushedByWale(s3, segment);
  const fetchOf = (url: string, name: string) => fetch(`${url}/wal-fetch/${name}?dest=pg_wal/RECOVERYXLOG&missing=ok`);

  // startRestoreSide sets WALE_PREFETCH=0: each miss is a `wal-e wal-fetch`,
  // judged by judgeMiss and StoreCheck (the worker's own check is the first test's).
  // The bucket lists fine (wal-e backup-list exits 0), and empty: WAL-E's
  // wal-fetch says "could no longer locate object", as of an object past the
  // end of an archive. The store's WAL directory holds nothing: a failure.
  for (const prefix of ["s3://wale/archiv", "s3://wale/"]) {
    const wrong = await startRestoreSide(scope, { ...s3.env, WALE_S3_PREFIX: prefix });
    const answer = await fetchOf(wrong.sidecar.url, segment);
    const body = await answer.text();
    expect(answer.status).toBe(500);
    expect(body).toContain(`saying it could not locate ${segment}, which is not believed`);
    const dir = `${prefix.replace(/\/+$/, "")}/wal_005/`;
    expect(body).toContain(`the store's WAL directory ${dir} holds nothing: is the prefix right? (WALE_S3_PREFIX)`);
    // One listing of that WAL directory (moto's log, read as it comes).
    const listing = `GET /wale/?prefix=${dir.slice("s3://wale/".length)} `;
    const listings = () => s3.requests().filter((r) => r.startsWith(listing));
    await waitFor("moto's log of the listing", () => listings().length > 0, 10_000);
    expect(listings()).toHaveLength(1);
    // PostgreSQL's restore_command aborts (255) instead of ending recovery at segment 1 (1).
    expect(await wrong.restore(segment)).toBe(255);
    expect(wrong.sidecar.requests().filter((r) => r.missing === true)).toHaveLength(0);
  }

  // The right prefix: the segment comes back, the next one is missing (404; 200 "missing" with missing=ok).
  const right = await startRestoreSide(scope, s3.env);
  expect((await fetchOf(right.sidecar.url, segment)).status).toBe(200);
  const past = nextSegment(segment);
  const notThere = await fetch(`${right.sidecar.url}/wal-fetch/${past}?dest=pg_wal/RECOVERYXLOG`);
  expect([notThere.status, await notThere.text()]).toEqual([404, `${past} is not in the archive\n`]);
  const missing = await fetchOf(right.sidecar.url, past);
  expect([missing.status, await missing.text()]).toEqual([200, `missing ${past}\n`]);
  expect(await right.restore(past)).toBe(1);
}, 180_000);
