import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseWorkerLine, WORKER_EXIT, workerArgv } from "../../src/workers/protocol.ts";

const workers = join(import.meta.dirname, "..", "..", "src", "workers");

describe("the workers' protocol", () => {
  test("WORKER_EXIT is the prelude's EXIT_ constants, name for name and code for code", () => {
    const prelude = readFileSync(join(workers, "_prelude.py"), "utf8");
    const python = Object.fromEntries(
      [...prelude.matchAll(/^EXIT_([A-Z]+) = (\d+)/gm)].map(([, name, code]) => [
        (name as string).toLowerCase(),
        Number(code),
      ]),
    );
    expect(python).toEqual({ ...WORKER_EXIT });
  });
  test("each worker exits with the prelude's names, never a bare code", () => {
    for (const worker of ["backup.py", "prefetch.py", "verify.py"]) {
      const source = readFileSync(join(workers, worker), "utf8");
      const main = source.slice(source.indexOf("\ndef main("));
      expect(main).not.toMatch(/^\s+return \d+$/m);
      expect(main).toContain("return EXIT_USAGE");
    }
  });
  test("workerArgv: the interpreter, -c, the prelude then the worker as one program, then the arguments", () => {
    const argv = workerArgv("/opt/wal-e/bin/python3", "verify", ["--terse", "verify"]);
    expect(argv.slice(0, 2)).toEqual(["/opt/wal-e/bin/python3", "-c"]);
    const program = argv[2] as string;
    expect(program.indexOf("EXIT_OK = 0")).toBeGreaterThan(-1);
    expect(program.indexOf("EXIT_OK = 0")).toBeLessThan(program.indexOf("def main("));
    expect(argv.slice(3)).toEqual(["--terse", "verify"]);
  });
  test("parseWorkerLine: a verb and its words; an empty line is nothing", () => {
    expect(parseWorkerLine("ok 7 000000010000000000000003\n")).toEqual({
      verb: "ok",
      words: ["7", "000000010000000000000003"],
      rest: "7 000000010000000000000003",
    });
    expect(parseWorkerLine("done")).toEqual({ verb: "done", words: [], rest: "" });
    expect(parseWorkerLine("   ")).toBeNull();
    expect(parseWorkerLine("")).toBeNull();
  });
});
