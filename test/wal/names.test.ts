import { describe, expect, test } from "bun:test";
import { checkWalName, walNameFromPath } from "../../src/wal/names.ts";

describe("checkWalName", () => {
  test.each([
    ["000000010000000000000001", "segment"],
    ["00000001000000A2000000FF", "segment"],
    ["00000002.history", "history"],
    ["000000010000000000000002.00000028.backup", "backup"],
    ["000000010000000000000003.partial", "partial"],
  ])("accepts %s as a %s", (name, kind) => {
    expect(checkWalName(name)).toEqual({ ok: true, name, kind: kind as never });
  });

  test.each([
    ["", /empty/],
    ["..", /not a WAL file name/],
    ["0000000100000000000000001", /not a WAL file name/], // 25 hex digits
    ["00000001000000000000001", /not a WAL file name/], // 23
    ["00000001000000000000000a", /lowercase/],
    ["00000001000000000000000A.HISTORY", /not a WAL file name/],
    ["0000000a.history", /lowercase/],
    ["00000001.history.backup", /not a WAL file name/],
    ["000000010000000000000001\u0000", /control character/],
    ["000000010000000000000001 ", /not a WAL file name/],
    ["RECOVERYXLOG", /not a WAL file name/],
    ["x".repeat(200), /too long/],
  ])("refuses %j", (name, reason) => {
    const check = checkWalName(name);
    expect(check.ok).toBe(false);
    if (!check.ok) {
      expect(check.reason).toMatch(reason);
      expect(check.reason).not.toContain("\n");
    }
  });
});

describe("walNameFromPath (the raw path after the route)", () => {
  test.each([
    ["000000010000000000000001", "000000010000000000000001"],
    ["pg_wal/000000010000000000000001", "000000010000000000000001"],
    ["pg_wal%2F000000010000000000000001", "000000010000000000000001"],
    ["pg_xlog/00000002.history", "00000002.history"],
  ])("%s names %s", (raw, name) => {
    expect(walNameFromPath(raw)).toMatchObject({ ok: true, name });
  });

  test.each([
    ["..", /\.\./],
    ["%2e%2e%2f%2e%2e%2fetc%2fshadow", /\.\./],
    ["..%2F000000010000000000000001", /\.\./],
    ["pg_wal/../000000010000000000000001", /\.\./],
    ["%252e%252e%252f000000010000000000000001", /not a WAL file name/], // double-encoded: decoded once only
    ["000000010000000000000001%00", /NUL/],
    ["pg_wal%5C000000010000000000000001", /backslash/],
    ["%E0%A4%A", /percent-encoded/],
    ["%FF%FE", /percent-encoded/],
    ["/etc/000000010000000000000001", /relative path/],
    ["pg_wal//000000010000000000000001", /relative path/],
    ["", /empty/],
    ["pg_wal/", /empty/],
  ])("refuses %j", (raw, reason) => {
    const check = walNameFromPath(raw);
    expect(check.ok).toBe(false);
    if (!check.ok) expect(check.reason).toMatch(reason);
  });
});
