/**
 * "Not in the archive" rests on WAL-E's own statement about that object, on
 * the real file store with real WAL-E, and the README's restore_command
 * (run by sh with the real wget) exits 1 only then: PostgreSQL ends
 * recovery on it. File store only: the file backend's proof is the store's
 * wal_005/ directory; S3's (the bucket lists, asked afresh) is in
 * s3.e2e.test.ts, and the last test's rule reads WAL-E's words alone, the
 * same for every backend.
 */
import { expect, test } from "bun:test";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { asDbUser, fileStore, run, script, startRestoreSide, useScope } from "../support/harness.ts";

const scope = useScope();
const SEG = "000000010000000000000003";

// Both ways a fetch runs: `wal-e wal-fetch` (WALE_PREFETCH=0) and the long-lived worker (src/workers/prefetch.py).
test.each([
  ["wal-e wal-fetch", "0"],
  ["the worker", "8"],
])(
  "file store, %s: an empty mount point is not an archive that lacks the segment; one with wal_005/ is",
  async (_, prefetch) => {
    const store = fileStore(scope);
    const { sidecar, restore } = await startRestoreSide(scope, {
      WALE_FILE_PREFIX: store.prefix,
      WALE_PREFETCH: prefetch,
    });
    // The store's root exists but holds nothing (a volume that did not mount): WAL-E's FileNotFoundError proves nothing.
    const empty = await fetch(`${sidecar.url}/wal-fetch/${SEG}?dest=pg_wal/RECOVERYXLOG&missing=ok`);
    expect(empty.status).toBe(500);
    expect(await restore(SEG)).toBe(255);
    // An archive (wal_005/ is there) that lacks the segment: a confirmed absence.
    await run(asDbUser(["mkdir", join(store.dir, "wal_005")]));
    expect(await (await fetch(`${sidecar.url}/wal-fetch/${SEG}?dest=pg_wal/RECOVERYXLOG&missing=ok`)).text()).toBe(
      `missing ${SEG}\n`,
    );
    expect(await restore(SEG)).toBe(1);
    const worker = sidecar.requests().map((r) => r.worker === true);
    expect(worker).toEqual(worker.map(() => prefetch !== "0"));
  },
  120_000,
);

// (WAL-E 1.1.1 falls back to stderr when /dev/log is missing, as here; the sidecar adds stderr either way.)
test("file store: WALE_LOG_DESTINATION=syslog still lets the sidecar read WAL-E's statement", async () => {
  const store = fileStore(scope);
  mkdirSync(join(store.dir, "wal_005"));
  const { restore } = await startRestoreSide(scope, {
    WALE_FILE_PREFIX: store.prefix,
    WALE_LOG_DESTINATION: "syslog",
  });
  expect(await restore(SEG)).toBe(1);
}, 120_000);

test("a WAL-E that exits 1 saying only 'boom' is a failure: restore_command exits 255, never 1", async () => {
  const store = fileStore(scope);
  mkdirSync(join(store.dir, "wal_005"));
  const bin = scope.tempDir("stand-in");
  // Lists the store (backup-list exits 0), fails every wal-fetch with one word.
  const wale = script(bin, "wal-e", `case "$*" in *backup-list*) exit 0;; esac\necho boom >&2\nexit 1`);
  const { sidecar, restore } = await startRestoreSide(scope, { WALE_FILE_PREFIX: store.prefix, WALE_BIN: wale });
  expect(await restore(SEG)).toBe(255);
  const failed = sidecar.requests().filter((r) => r.route === "/wal-fetch");
  expect(failed.length).toBe(6);
  expect(failed.every((r) => r.status === 500)).toBe(true);
}, 120_000);
