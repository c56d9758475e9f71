/**
 * The restore_command that `restore --via` writes, run by a real shell with
 * the real wget against a scripted server: only a confirmed absence may exit
 * 1 to 125 (PostgreSQL ends recovery there); a failure is retried, then 255.
 * `sleep` is a no-op on PATH here, so the retries take no time.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { restoreCommand } from "../../src/restore/steps.ts";
import { script } from "../support/harness.ts";

const dir = mkdtempSync(join(tmpdir(), "restore-command-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
mkdirSync(join(dir, "bin"));
mkdirSync(join(dir, "pg_wal"));
script(join(dir, "bin"), "sleep", "exit 0");
const SEG = "000000010000000000000003";

/**
 * Serves scripted answers, one a request (the last one repeats), and counts
 * the requests. Like the sidecar, a `fetched` answer to /wal-fetch comes
 * after the file is at dest, unless `writes` is false.
 */
function server(answers: Array<[number, string]>, writes = true) {
  let calls = 0;
  const s = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: (request) => {
      const [status, body] = answers[Math.min(calls++, answers.length - 1)] as [number, string];
      const dest = new URL(request.url).searchParams.get("dest");
      if (writes && dest && body.startsWith("fetched")) writeFileSync(join(dir, dest), "segment bytes");
      return new Response(body, { status });
    },
  });
  return { url: `http://127.0.0.1:${s.port}`, calls: () => calls, stop: () => s.stop(true) };
}

/** Runs restore_command as PostgreSQL would: %f and %p replaced, through sh, in PGDATA. */
async function restore(via: string, stream: boolean, line = restoreCommand({ via, stream })): Promise<number> {
  const command = line.replaceAll("%f", SEG).replaceAll("%p", "pg_wal/RECOVERYXLOG");
  const proc = Bun.spawn(["sh", "-c", command], {
    cwd: dir,
    env: { PATH: `${join(dir, "bin")}:${process.env.PATH}` },
    stdout: "ignore",
    stderr: "ignore",
  });
  return proc.exited;
}

const recovered = join(dir, "pg_wal/RECOVERYXLOG");
const clean = () => rmSync(recovered, { force: true });

describe.each([false, true])("stream=%p", (stream) => {
  const ok = stream ? "the segment's bytes" : `fetched ${SEG}\n`;
  const missing = stream ? "" : `missing ${SEG}\n`;

  test("fetched: 0", async () => {
    clean();
    const s = server([[200, ok]]);
    expect(await restore(s.url, stream)).toBe(0);
    if (stream) expect(readFileSync(recovered, "utf8")).toBe(ok);
    s.stop();
  });

  test("a confirmed absence: 1, and no file", async () => {
    clean();
    const s = server([[200, missing]]);
    expect(await restore(s.url, stream)).toBe(1);
    expect(existsSync(recovered)).toBe(false);
    s.stop();
  });

  // (GNU wget retries a 504 by itself, with pauses, before the loop's own tries; it ends the same way.)
  test.each([404, 500, 503])("%d every time: tried 6 times, then 255 (recovery stops, not ends)", async (status) => {
    clean();
    const s = server([[status, "WAL-E failed\n"]]);
    expect(await restore(s.url, stream)).toBe(255);
    expect(s.calls()).toBe(6);
    expect(existsSync(recovered)).toBe(false);
    expect(existsSync(`${recovered}.part`)).toBe(false);
    s.stop();
  });

  test("a failure, then success: 0", async () => {
    clean();
    const s = server([
      [500, "WAL-E failed\n"],
      [503, "busy\n"],
      [200, ok],
    ]);
    expect(await restore(s.url, stream)).toBe(0);
    expect(s.calls()).toBe(3);
    s.stop();
  });

  test("no sidecar at all: 255", async () => {
    clean();
    const s = server([[200, ok]]);
    const url = s.url;
    s.stop();
    expect(await restore(url, stream)).toBe(255);
  });
});

describe("after `fetched`, the file itself", () => {
  test("fetched, but %p is not there: 255", async () => {
    clean();
    const s = server([[200, `fetched ${SEG}\n`]], false);
    expect(await restore(s.url, false)).toBe(255);
    s.stop();
  });
  test("fetched, but %p is empty: 255", async () => {
    clean();
    writeFileSync(recovered, "");
    const s = server([[200, `fetched ${SEG}\n`]], false);
    expect(await restore(s.url, false)).toBe(255);
    s.stop();
  });
  test("the README's restore_command lines are the ones `restore --via` writes, and check %p the same way", async () => {
    const readme = readFileSync(join(import.meta.dir, "../..", "README.md"), "utf8");
    const lines = [...readme.matchAll(/^restore_command = '(.*)'$/gm)].map((m) => m[1] as string);
    const via = "http://<sidecar>";
    expect(lines).toContain(restoreCommand({ via, stream: false }));
    expect(lines).toContain(restoreCommand({ via, stream: false }, true));
    const s = server([[200, `fetched ${SEG}\n`]], false);
    const line = restoreCommand({ via, stream: false }).replace(via, s.url);
    clean();
    expect(await restore(s.url, false, line)).toBe(255);
    s.stop();
  });
});
