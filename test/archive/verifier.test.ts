import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Verifier, type VerifyTrigger } from "../../src/archive/verifier.ts";
import { parseConfig } from "../../src/config/config.ts";
import { createLogger, redactor } from "../../src/observe/log.ts";
import { Metrics } from "../../src/observe/metrics.ts";
import { WaleRunner } from "../../src/wale/runner.ts";
import { fakeRuntime, fakeWaleBin } from "../support/fake-runtime.ts";

const dir = realpathSync(mkdtempSync(join(tmpdir(), "verifier-")));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const turn = () => new Promise((r) => setTimeout(r, 0));

const S = (n: number) => `00000001000000000000000${n}`;
const OLD = `base_${S(2)}_00000028`;
const KEPT = `base_${S(5)}_00000028`;
/** The store before a retention run: two backups and the WAL from the older one's start. */
const before = [
  `backup ${OLD} ${S(2)} ${S(2)} 2026-01-01T00:02:00`,
  `backup ${KEPT} ${S(5)} ${S(5)} 2026-01-01T00:05:00`,
  ...[2, 3, 4, 5, 6].map((n) => `wal ${S(n)} 2026-01-01T00:0${n}:00`),
  "done 2 5",
];
/** After it deleted the older backup and its WAL (`wal-e delete before`). */
const after = [
  before[1] ?? "",
  ...before.filter((line) => /^wal /.test(line) && line.slice(4, 28) >= S(5)),
  "done 1 2",
];

/**
 * A Verifier whose worker lists `store()` as it is when the worker starts,
 * and runs until `release()`: a verify that is still listing while the
 * store changes.
 */
function gatedVerifier(store: () => string[]) {
  let release: () => void = () => {};
  const gate = new Promise<void>((r) => (release = r));
  const { runtime, spawned } = fakeRuntime(() => ({ exitCode: 0, stdout: `${store().join("\n")}\n` }));
  const spawn = runtime.spawn;
  runtime.spawn = (argv, options) => {
    const child = spawn(argv, options);
    return { ...child, exited: gate.then(() => child.exited) };
  };
  const config = parseConfig({
    PGDATA: join(dir, "pgdata"),
    WALE_BIN: fakeWaleBin(dir),
    WALE_SPOOL_DIR: join(dir, "spool"),
  });
  const metrics = new Metrics();
  const redact = redactor(config.secrets);
  const lines: string[] = [];
  const log = createLogger((l) => lines.push(l), redact);
  const verifier = new Verifier(config, new WaleRunner(runtime, config.wale), metrics, log);
  const firstRecoverability = async () =>
    Number(/^wale_sidecar_first_recoverability_point_seconds (\S+)$/m.exec(await metrics.text())?.[1]);
  const triggers = () => lines.map((l) => JSON.parse(l)).map((l) => l.trigger as VerifyTrigger);
  return { verifier, spawned, release, firstRecoverability, triggers };
}

test("the verify after a retention run lists the store again: it never joins one that listed it before", async () => {
  let store = before;
  const v = gatedVerifier(() => store);
  const scheduled = v.verifier.run("schedule");
  // While the scheduled verify lists, the backup's retention deletes the older backup; then its verify is asked for.
  while (v.spawned.length === 0) await turn();
  store = after;
  const afterRetention = v.verifier.run("backup");
  // A scheduled tick meanwhile joins the running one; asking twice after the store changed lists it once more.
  const tick = v.verifier.run("schedule");
  const asked = v.verifier.run("http");
  v.release();
  expect((await scheduled).report.window?.from).toBe(OLD);
  expect(await tick).toBe(await scheduled);
  const fresh = await afterRetention;
  expect(await asked).toBe(fresh);
  expect(fresh.report.window).toMatchObject({ from: KEPT, earliest: "2026-01-01T00:05:00.000Z" });
  expect(v.spawned).toHaveLength(2);
  // The metrics say what the verify after the retention said: the window starts at the kept backup.
  expect(await v.firstRecoverability()).toBe(Date.parse("2026-01-01T00:05:00Z") / 1000);
  expect(v.triggers()).toEqual(["schedule", "backup"]);
  await v.verifier.idle();
  expect(v.spawned).toHaveLength(2);
});

test("idle() waits for the verify queued behind the running one", async () => {
  const v = gatedVerifier(() => after);
  const running = v.verifier.run("schedule");
  const queued = v.verifier.run("backup");
  let idle = false;
  const waited = v.verifier.idle().then(() => (idle = true));
  while (v.spawned.length === 0) await turn();
  await turn();
  expect(idle).toBe(false);
  v.release();
  await waited;
  expect(v.spawned).toHaveLength(2);
  expect((await queued).at.getTime()).toBeGreaterThanOrEqual((await running).at.getTime());
});
