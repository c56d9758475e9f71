/** The Bun runtime's process groups, with real processes. */
import { afterEach, describe, expect, test } from "bun:test";
import process from "node:process";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { running, waitFor } from "../support/harness.ts";

const env = { PATH: process.env.PATH ?? "/usr/bin:/bin" };
const realKill = process.kill;
afterEach(() => {
  process.kill = realKill;
});

describe("kill() of a child that leads its own group", () => {
  test("after the leader is reaped, what it left running in its group is still killed", async () => {
    const child = bunRuntime.spawn(["sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $!"], {
      env,
      stdio: "pipe",
      newGroup: true,
    });
    const sleeper = Number((await new Response(child.stdout).text()).trim());
    await child.exited;
    expect(running(sleeper)).toBe(true);
    child.kill("SIGKILL");
    await waitFor("the sleeper to be gone", () => !running(sleeper), 10_000, 50);
  });
  test("after the leader is reaped and its group is empty, no group is signalled: its id may be reused", async () => {
    const child = bunRuntime.spawn(["true"], { env, stdio: "pipe", newGroup: true });
    await child.exited;
    const signalled: number[] = [];
    process.kill = ((pid: number, signal?: string | number) => {
      signalled.push(pid);
      return realKill(pid, signal);
    }) as typeof process.kill;
    child.kill("SIGKILL");
    expect(signalled).toEqual([]);
  });
});
