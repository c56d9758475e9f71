import { describe, expect, test } from "bun:test";
import { parseMajorVersion } from "../../src/restore/pg-version.ts";

describe("parseMajorVersion", () => {
  test.each([
    ["14\n", 14],
    ["9.6\n", 9],
    ["11", 11],
  ])("%j is %d", (text, major) => expect(parseMajorVersion(text)).toBe(major));
  test("anything else is an error", () => expect(() => parseMajorVersion("banana")).toThrow(/PG_VERSION/));
});
