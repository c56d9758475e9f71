import { expect, test } from "bun:test";
import { check, parseCheckArgs } from "../../src/cli/check.ts";
import { UsageError } from "../../src/cli/command.ts";
import { fakeRuntime } from "../support/fake-runtime.ts";

test("parseCheckArgs: the defaults, both spellings", () => {
  expect(parseCheckArgs([])).toEqual({ timeoutMs: 60_000, sidecar: undefined });
  expect(parseCheckArgs(["--timeout", "5", "--sidecar=http://wale:8080/"])).toEqual({
    timeoutMs: 5_000,
    sidecar: "http://wale:8080",
  });
});

test.each([
  [["--timeout", "0"], '--timeout must be a whole number of seconds from 1 to 3600, not "0"'],
  [["--timeout=1.5"], '--timeout must be a whole number of seconds from 1 to 3600, not "1.5"'],
  [["--timeout", "3601"], '--timeout must be a whole number of seconds from 1 to 3600, not "3601"'],
  [["--timeout"], "--timeout needs a value"],
  [["--timeout", "5", "--timeout", "6"], "--timeout is given twice"],
  [
    ["--sidecar", "ftp://wale"],
    '--sidecar must be an http:// URL of the sidecar, such as http://wale:80, not "ftp://wale"',
  ],
  [
    ["--sidecar", "http://wale/?x=1"],
    '--sidecar must be an http:// URL of the sidecar, such as http://wale:80, not "http://wale/?x=1"',
  ],
  [["--force"], 'unknown argument "--force"'],
])("%o: %s", (args, message) => {
  expect(() => parseCheckArgs(args)).toThrow(new UsageError(message));
});

test("bad arguments: exit 2 with the reason, before the configuration is read or anything runs", async () => {
  const { runtime, spawned } = fakeRuntime();
  const err: string[] = [];
  runtime.stderr = (text) => void err.push(text);
  // An invalid environment would be exit 1: the arguments are judged first.
  runtime.env = () => ({ WALE_LISTEN_PORT: "not a port" });
  expect(await check.run(runtime, ["--timeout", "x"])).toBe(2);
  expect(err.join("")).toBe(
    'wale-sidecar check: --timeout must be a whole number of seconds from 1 to 3600, not "x"\nRun "wale-sidecar check --help" for the options.\n',
  );
  expect(spawned).toEqual([]);
});
