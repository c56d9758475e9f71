/**
 * scripts/demo.sh, the README's first command, as a new user runs it (as
 * root): it ends with the rows back, and it leaves nothing running, neither
 * when it ends nor when it is stopped half-way.
 */
import { expect, test } from "bun:test";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join, resolve } from "node:path";
import { running, script, useScope, waitFor } from "../support/harness.ts";

const scope = useScope();
const ROOT = resolve(import.meta.dir, "../..");
const isRoot = process.getuid?.() === 0;

/**
 * The live processes that belong to a demo in `dir`: its sidecar (the binary
 * is copied there), PostgreSQL (its cwd is PGDATA; it rewrites its own argv
 * and environ) and WAL-E (PGDATA and the store in its environment).
 */
function leftovers(dir: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
    const read = (what: string) => {
      try {
        return what === "cwd" || what === "exe"
          ? readlinkSync(`/proc/${pid}/${what}`)
          : readFileSync(`/proc/${pid}/${what}`, "latin1");
      } catch {
        return "";
      }
    };
    if (!["cmdline", "environ", "cwd", "exe"].some((what) => read(what).includes(dir))) continue;
    if (running(Number(pid))) found.push(`${pid} ${read("cmdline").replaceAll("\0", " ").trim()}`);
  }
  return found;
}

/** Starts the demo in its own DEMO_DIR; stopped with SIGTERM (its own clean-up runs) if the test ends first. */
function startDemo(name: string, env: Record<string, string> = {}) {
  const dir = join(scope.tempDir(name), "demo");
  const demo = Bun.spawn(["bash", "scripts/demo.sh"], {
    cwd: ROOT,
    env: { ...process.env, DEMO_DIR: dir, ...env },
    stdout: "pipe",
    stderr: "pipe",
    stdin: "ignore",
  });
  scope.defer(async () => {
    demo.kill("SIGTERM");
    await demo.exited;
  });
  let stdout = "";
  const reading = (async () => {
    const decoder = new TextDecoder();
    const reader = demo.stdout.getReader();
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read())
      stdout += decoder.decode(chunk.value, { stream: true });
  })();
  const stderr = new Response(demo.stderr).text();
  return {
    dir,
    demo,
    stdout: () => stdout,
    done: async () => {
      const exitCode = await demo.exited;
      await reading;
      return { exitCode, stdout, stderr: await stderr };
    },
  };
}

test.skipIf(!isRoot)(
  "the demo restores into a fresh PGDATA, the rows and the configuration come back, and nothing is left running",
  async () => {
    const { dir, done } = startDemo("full");
    const { exitCode, stdout, stderr } = await done();
    expect({ exitCode, stderr: exitCode === 0 ? "" : stderr.slice(-2000) }).toEqual({ exitCode: 0, stderr: "" });
    expect(stdout).toContain("== PostgreSQL 17: initdb --data-checksums");
    expect(stdout).toMatch(/backup complete/);
    // The source's own postgresql.conf comes back with the backup, archive_command and all.
    expect(stdout).toContain("wale-sidecar restore: postgresql.conf: from the backup\n");
    expect(stdout).toMatch(
      /archive_command, from the backup's postgresql\.conf: wget -q -O - http:\/\/127\.0\.0\.1:\d+\/wal-push\/%f/,
    );
    const before = /the source holds (103000 rows, md5 [0-9a-f]{32})/.exec(stdout)?.[1];
    expect(before).toBeDefined();
    expect(stdout).toContain(`the restored database holds ${before}\n`);
    expect(stdout).toContain(`the rows came back: all ${before}\n`);
    expect(leftovers(dir)).toEqual([]);
  },
  600_000,
);

test.skipIf(!isRoot)(
  "a demo stopped half-way (SIGTERM) stops its PostgreSQL and its sidecar",
  async () => {
    const { dir, demo, stdout, done } = startDemo("stopped");
    await waitFor("the demo's database and sidecar to be up", () => stdout().includes("== writing rows"), 300_000);
    // Both are running: the sidecar (the demo's copy of the binary) and PostgreSQL (cwd in its PGDATA).
    const up = leftovers(dir);
    expect(up.some((line) => line.includes(`${dir}/wale-sidecar serve`))).toBe(true);
    expect(up.some((line) => line.includes("postgres"))).toBe(true);
    demo.kill("SIGTERM");
    const { exitCode } = await done();
    expect(exitCode).toBe(143);
    expect(leftovers(dir)).toEqual([]);
  },
  600_000,
);

test.skipIf(!isRoot)(
  "a demo step that fails (with its database and sidecar up) stops its PostgreSQL and its sidecar",
  async () => {
    // A psql first on PATH that fails the demo's CHECKPOINT, the step before the backup, and runs the real one otherwise.
    const bin = scope.tempDir("failing-psql");
    script(
      bin,
      "psql",
      `case "$*" in *CHECKPOINT*) echo "psql: made to fail" >&2; exit 3;; esac\nexec /usr/bin/psql "$@"`,
    );
    const { dir, stdout, done } = startDemo("failing", { PATH: `${bin}:${process.env.PATH}` });
    const { exitCode, stderr } = await done();
    expect(stdout()).toContain("== writing rows");
    expect(stderr).toContain("psql: made to fail");
    expect(exitCode).toBe(3);
    expect(leftovers(dir)).toEqual([]);
  },
  600_000,
);
