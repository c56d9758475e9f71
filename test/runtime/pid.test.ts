import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import process from "node:process";
import { groupHasMembers, isAlive } from "../../src/runtime/pid.ts";

describe("process ids", () => {
  test("isAlive: this process is; a process that has exited and been reaped is not; nonsense is not", () => {
    expect(isAlive(process.pid)).toBe(true);
    const child = spawnSync("true");
    expect(child.pid).toBeGreaterThan(0);
    expect(isAlive(child.pid as number)).toBe(false);
    for (const pid of [0, -1, 1.5, Number.NaN]) expect(isAlive(pid)).toBe(false);
  });
  test("isAlive: another user's process is alive too (EPERM)", () => {
    // pid 1 belongs to root; as root the kill(0) succeeds, as anyone else it is EPERM: alive either way.
    expect(isAlive(1)).toBe(true);
  });
  test("groupHasMembers: this process's own group has one; a group of a reaped process has none", () => {
    const stat = readFileSync(`/proc/${process.pid}/stat`, "utf8");
    const pgid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
    expect(pgid).toBeGreaterThan(0);
    expect(groupHasMembers(pgid)).toBe(true);
    const child = spawnSync("true");
    expect(groupHasMembers(child.pid as number)).toBe(false);
  });
});
