import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../../src/config/config.ts";
import { walePython } from "../../src/wale/python.ts";

describe("walePython: the interpreter of WAL-E's console script", () => {
  const dir = mkdtempSync(join(tmpdir(), "wale-python-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string, mode = 0o755) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    chmodSync(path, mode);
    return path;
  };
  const python3 = file("python3", "#!/bin/sh\n");
  const pip = (interpreter: string) => `#!${interpreter}\nimport re\nimport sys\nfrom wal_e.cmd import main\n`;
  const setuptools = (interpreter: string) =>
    `#!${interpreter}\n# EASY-INSTALL-ENTRY-SCRIPT: 'wal-e==1.1.1','console_scripts','wal-e'\n` +
    "sys.exit(load_entry_point('wal-e==1.1.1', 'console_scripts', 'wal-e')())\n";
  const python = (WALE_BIN: string, PATH = "") => walePython(parseConfig({ WALE_BIN, PATH }).wale);

  test("pip's and setuptools' wal-e, by path or found on PATH", async () => {
    expect(await python(file("pip", pip(python3)))).toBe(python3);
    expect(await python(file("setuptools", setuptools(python3)))).toBe(python3);
    file("wal-e", pip(python3));
    expect(await python("wal-e", `/nonexistent:${dir}`)).toBe(python3);
  });
  test("#!/usr/bin/env python3 finds python3 on PATH", async () => {
    expect(await python(file("env", pip("/usr/bin/env python3")), dir)).toBe(python3);
  });
  test("null where it cannot be sure", async () => {
    // A wrapper, Python or not: it may set up what the worker would miss.
    expect(await python(file("sh-wrapper", '#!/bin/sh\nexec /opt/wal-e/bin/wal-e "$@"\n'))).toBeNull();
    const wrapper = `#!${python3}\nimport os, subprocess, sys\nos.execv("/opt/wal-e/bin/wal-e", sys.argv)\n`;
    expect(await python(file("py-wrapper", wrapper))).toBeNull();
    // Interpreter flags, an interpreter that is gone, no Python at all.
    expect(await python(file("flags", pip(`${python3} -E`)))).toBeNull();
    expect(await python(file("stale", pip(join(dir, "gone", "python3"))))).toBeNull();
    expect(await python(file("ruby", pip("/usr/bin/ruby")))).toBeNull();
    // No file, or not executable where PATH finds it.
    expect(await python(join(dir, "missing"))).toBeNull();
    file("plain", pip(python3), 0o644);
    expect(await python("plain", dir)).toBeNull();
    expect(await python("wal-e", "")).toBeNull();
  });
});
