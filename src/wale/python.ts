/**
 * Which Python runs WAL-E, for the workers (src/workers/) that run in it.
 */
import { constants } from "node:fs";
import { access, open } from "node:fs/promises";
import { basename, delimiter, join } from "node:path";
import type { Config } from "../config/config.ts";

type Wale = Config["wale"];

/**
 * The Python that runs WAL-E, when WALE_BIN is WAL-E's own console script:
 * its first line names the interpreter (`#!/opt/wal-e/bin/python3`, or
 * `#!/usr/bin/env python3`) and it loads wal_e.cmd's main (pip writes
 * `from wal_e.cmd import main`, setuptools `load_entry_point('wal-e==...`).
 * Null for anything else, a wrapper script above all: a wrapper may set up
 * the environment (a store, credentials) that the worker would then miss.
 * Prefetching then starts `wal-e wal-prefetch` once per segment
 * (src/wal/prefetcher.ts), and base backups are refused. WALE_PYTHON names the
 * interpreter outright, for a wrapper whose environment the sidecar has
 * too (and must be executable).
 */
export async function walePython(wale: Wale): Promise<string | null> {
  if (wale.python) return (await executable(wale.python)) ? wale.python : null;
  const path = wale.env.PATH ?? "";
  const bin = wale.bin.includes("/") ? wale.bin : await onPath(wale.bin, path);
  const script = bin ? await head(bin).catch(() => "") : "";
  if (!/^from wal_e\.cmd import main$|load_entry_point\('wal-e==/m.test(script)) return null;
  const [, interpreter = "", arg] = /^#!\s*(\S+)(?:[ \t]+(\S+))?[ \t]*$/.exec(script.split("\n")[0] ?? "") ?? [];
  const python = basename(interpreter) === "env" ? arg : arg === undefined ? interpreter : undefined;
  if (!python || !/^python[0-9.]*$/.test(basename(python))) return null;
  // A stale first line (a venv moved or rebuilt) names an interpreter that is gone.
  return python.includes("/") ? ((await executable(python)) ? python : null) : await onPath(python, path);
}

async function onPath(name: string, path: string): Promise<string | null> {
  for (const dir of path.split(delimiter).filter(Boolean)) {
    const candidate = join(dir, name);
    if (await executable(candidate)) return candidate;
  }
  return null;
}

const executable = (path: string) =>
  access(path, constants.X_OK).then(
    () => true,
    () => false,
  );

/** The first 4 KB of a file, as text (a console script is smaller); rejects when it cannot be read. */
async function head(path: string): Promise<string> {
  const handle = await open(path, "r");
  try {
    const { buffer, bytesRead } = await handle.read(new Uint8Array(4096), 0, 4096, 0);
    return new TextDecoder().decode(buffer.subarray(0, bytesRead));
  } finally {
    await handle.close();
  }
}
