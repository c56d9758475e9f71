import { describe, expect, test } from "bun:test";
import { parseConfig } from "../../src/config/config.ts";
import { ShuttingDown } from "../../src/wale/errors.ts";
import { lastLines, WaleRunner } from "../../src/wale/runner.ts";
import { fakeRuntime } from "../support/fake-runtime.ts";

const wale = parseConfig({ WALE_BIN: "/opt/wal-e/bin/wal-e" }).wale;

const runtime = (stderr: string) => fakeRuntime({ exitCode: 1, stderr }).runtime;

describe("WaleRunner", () => {
  test("passes the WAL-E environment and collects the outcome", async () => {
    const { runtime, spawned } = fakeRuntime({ exitCode: 3, stderr: "boom\n", stdout: "out" });
    const r = await new WaleRunner(runtime, wale).run(["wal-e", "x"]);
    expect(spawned).toEqual([["wal-e", "x"]]);
    expect(r).toMatchObject({ exitCode: 3, stderr: "boom\n", stdout: "out" });
  });
  test("a spawn failure is exit 127 with the reason", async () => {
    const { runtime } = fakeRuntime();
    runtime.spawn = () => {
      throw new Error("Executable not found");
    };
    const r = await new WaleRunner(runtime, wale).run(["nope"]);
    expect(r.exitCode).toBe(127);
    expect(r.stderr).toContain("Executable not found");
  });
  test("keeps only the tail of a long stderr", async () => {
    const { runtime } = fakeRuntime({ exitCode: 1, stderr: `${"x".repeat(99)}\n`.repeat(1000).concat("THE END") });
    const r = await new WaleRunner(runtime, wale).run(["wal-e"]);
    expect(r.stderr.length).toBeLessThanOrEqual(16 * 1024);
    expect(r.stderr.endsWith("THE END")).toBe(true);
  });
  test("the tail starts at a line: never with the end of a secret cut in the middle", async () => {
    const secret = "wJalrXUtnFEMI/K7MDENG";
    // 16 KB are kept: the cut falls 5 bytes into the secret's line.
    const stderr = `${secret}\n${"y".repeat(16 * 1024 + 5 - secret.length - 1)}`;
    const r = await new WaleRunner(runtime(stderr), wale).run(["wal-e"]);
    expect(r.stderr).not.toContain(secret.slice(5));
    expect(r.stderr.startsWith("yyy")).toBe(true);
  });
  test("onStderrLine hears every line, beyond the kept tail; stderrEnded says the stream was read to its end", async () => {
    const stderr = `${"x".repeat(99)}\n`.repeat(1000).concat("first\nTHE END");
    const { runtime } = fakeRuntime({ exitCode: 0, stderr });
    const lines: string[] = [];
    const r = await new WaleRunner(runtime, wale).run(["wal-e"], { onStderrLine: (line) => lines.push(line) });
    expect(lines).toHaveLength(1002);
    expect(lines.slice(-2)).toEqual(["first", "THE END"]);
    expect(r.stderrEnded).toBe(true);
  });
  test("a stderr still open a second after the exit (a process WAL-E left holds it) is not read to its end", async () => {
    const { runtime } = fakeRuntime();
    const spawn = runtime.spawn;
    runtime.spawn = (argv, options) => ({
      ...spawn(argv, options),
      stderr: new ReadableStream<Uint8Array>({
        start: (controller) => controller.enqueue(new TextEncoder().encode("said\n")),
      }),
    });
    const lines: string[] = [];
    const r = await new WaleRunner(runtime, wale).run(["wal-e"], { onStderrLine: (line) => lines.push(line) });
    expect(lines).toEqual(["said"]);
    expect(r.stderrEnded).toBe(false);
  });
  test("once closed, a run or a session is turned away with ShuttingDown, an error of its own, not an HTTP status", async () => {
    const { runtime, spawned } = fakeRuntime();
    const runner = new WaleRunner(runtime, wale);
    await runner.close();
    const run = await runner.run(["wal-e"]).catch((e) => e);
    expect(run).toBeInstanceOf(ShuttingDown);
    expect(run.message).toBe("shutting down; retry against the new instance");
    expect("status" in run).toBe(false);
    expect(await runner.session(["worker"], () => {}).catch((e) => e)).toBeInstanceOf(ShuttingDown);
    // Clean-up still runs after close.
    expect((await runner.run(["wal-e", "delete"], { afterClose: true })).exitCode).toBe(0);
    expect(spawned).toEqual([["wal-e", "delete"]]);
  });
});

test("lastLines keeps the last non-empty lines", () => {
  expect(lastLines("a\n\nb\nc\n", 2)).toBe("b\nc");
});
