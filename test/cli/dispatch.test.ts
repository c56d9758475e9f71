/** The command line of the compiled binary. */
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run, TOOLS, waitFor } from "../support/harness.ts";

const dir = mkdtempSync(join(tmpdir(), "cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A stand-in for WAL-E: prints its argv and the log destination, then exits with $FAKE_EXIT. */
const fake = join(dir, "fake-wal-e");
writeFileSync(
  fake,
  `#!/bin/sh
echo "args:$*"
echo "dest:$WALE_LOG_DESTINATION prefix:$WALE_S3_PREFIX"
if [ "$1" = "cat" ]; then cat; fi
if [ "$1" = "sleep" ]; then
  sleep 30 >/dev/null &
  trap "kill $!; echo got TERM; exit 42" TERM
  echo ready > "${dir}/ready"
  wait
fi
exit \${FAKE_EXIT:-0}
`,
);
chmodSync(fake, 0o755);

const sidecar = (args: string[], env: Record<string, string> = {}) =>
  run([TOOLS.sidecar, ...args], { env: { PATH: process.env.PATH ?? "", WALE_BIN: fake, ...env }, check: false });

describe("wale-sidecar", () => {
  test("--help and --version", async () => {
    const help = await sidecar(["--help"]);
    expect(help.exitCode).toBe(0);
    expect(help.stdout).toContain("Usage: wale-sidecar");
    for (const command of ["serve", "wal-e", "ping"]) expect(help.stdout).toContain(`  ${command}`);
    const version = await sidecar(["--version"]);
    expect(version).toMatchObject({ exitCode: 0, stdout: expect.stringMatching(/^wale-sidecar \d+\.\d+\.\d+\n$/) });
    expect((await sidecar(["serve", "--help"])).stdout).toContain("GET /wal-push/<file>");
  });

  test("an unknown subcommand prints usage on stderr and exits 2", async () => {
    const r = await sidecar(["frobnicate"]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('unknown command "frobnicate"');
    expect(r.stderr).toContain("Usage:");
    expect(r.stdout).toBe("");
  });

  test("a bad configuration prints one line naming the variable and exits 1", async () => {
    const r = await sidecar(["serve"], { WALE_LISTEN_PORT: "http" });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe(
      'wale-sidecar: invalid configuration: WALE_LISTEN_PORT: must be a TCP port from 1 to 65535 (got "http")\n',
    );
  });
});

describe("wale-sidecar wal-e", () => {
  test("runs WAL-E with exactly the arguments, and its exit code", async () => {
    const r = await sidecar(["wal-e", "backup-fetch", "/data dir", "LATEST", "--help"], {
      FAKE_EXIT: "3",
      WALE_S3_BUCKET: "b",
      WALE_S3_PATH: "p",
    });
    expect(r.exitCode).toBe(3);
    expect(r.stdout).toBe("args:backup-fetch /data dir LATEST --help\ndest:stderr prefix:s3://b/p\n");
  });

  test("passes stdin through", async () => {
    const proc = Bun.spawn([TOOLS.sidecar, "wal-e", "cat"], {
      env: { WALE_BIN: fake },
      stdin: new TextEncoder().encode("from stdin\n"),
      stdout: "pipe",
    });
    expect(await new Response(proc.stdout).text()).toContain("from stdin\n");
    expect(await proc.exited).toBe(0);
  });

  test("forwards SIGTERM to WAL-E", async () => {
    const proc = Bun.spawn([TOOLS.sidecar, "wal-e", "sleep"], { env: { WALE_BIN: fake }, stdout: "pipe" });
    await waitFor("the fake WAL-E to start", () => Bun.file(join(dir, "ready")).exists(), 10_000);
    proc.kill("SIGTERM");
    expect(await proc.exited).toBe(42);
    expect(await new Response(proc.stdout).text()).toContain("got TERM");
  });

  test("a WAL-E that cannot start is exit 127 with a clear message", async () => {
    const r = await sidecar(["wal-e", "version"], { WALE_BIN: join(dir, "missing") });
    expect(r.exitCode).toBe(127);
    expect(r.stderr).toContain("could not start");
  });

  test("the real WAL-E", async () => {
    const r = await sidecar(["wal-e", "version"], { WALE_BIN: TOOLS.wale });
    expect(r).toMatchObject({ exitCode: 0, stdout: "1.1.1\n" });
  });
});

describe("wale-sidecar verify", () => {
  test("--help; an unknown argument is exit 2 and runs nothing; a WAL-E that is not WAL-E's script is exit 1", async () => {
    const help = await sidecar(["verify", "--help"]);
    expect(help).toMatchObject({ exitCode: 0, stdout: expect.stringContaining("Usage: wale-sidecar verify [--json]") });
    expect((await sidecar(["--help"])).stdout).toContain("  verify");
    const bad = await sidecar(["verify", "--deep"]);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toStartWith('wale-sidecar verify: unknown argument "--deep"');
    expect(bad.stdout).toBe("");
    // The stand-in is no console script of WAL-E's: there is no Python to list with.
    const noPython = await sidecar(["verify"]);
    expect(noPython.exitCode).toBe(1);
    expect(noPython.stderr).toBe(
      "wale-sidecar verify: verify needs WALE_BIN to be WAL-E's own console script, or WALE_PYTHON: the listing runs in WAL-E's Python\n",
    );
  });
});
