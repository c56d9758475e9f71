/**
 * A Runtime whose spawn records argv and answers with a scripted result,
 * for unit tests of error paths. It never replaces real WAL-E in the
 * end-to-end tests.
 */
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "../../src/config/config.ts";
import { createLogger, redactor } from "../../src/observe/log.ts";
import type { Child, Runtime } from "../../src/runtime/types.ts";
import { createSidecar } from "../../src/sidecar.ts";

export interface Scripted {
  exitCode: number;
  stderr?: string;
  stdout?: string;
}

const streamOf = (text: string) =>
  new ReadableStream<Uint8Array>({
    start(controller) {
      if (text) controller.enqueue(new TextEncoder().encode(text));
      controller.close();
    },
  });

export function fakeRuntime(result: Scripted | ((argv: string[]) => Scripted) = { exitCode: 0 }) {
  const spawned: string[][] = [];
  const runtime: Runtime = {
    name: "fake",
    spawn(argv): Child {
      spawned.push(argv);
      const r = typeof result === "function" ? result(argv) : result;
      return {
        pid: 1,
        exited: Promise.resolve(r.exitCode),
        stdin: null,
        stdout: streamOf(r.stdout ?? ""),
        stderr: streamOf(r.stderr ?? ""),
        kill() {},
      };
    },
    serve() {
      throw new Error("not in unit tests");
    },
    onSignal() {},
    env: () => ({}),
    args: () => [],
    exit() {
      throw new Error("exit called");
    },
    stdout() {},
    stderr() {},
  };
  return { runtime, spawned };
}

/** A sidecar around `runtime`, its log lines going to `write` (nowhere by default). */
export function sidecarFor(config: Config, runtime: Runtime, write: (line: string) => void = () => {}) {
  const redact = redactor(config.secrets);
  return createSidecar(config, runtime, createLogger(write, redact), redact);
}

/**
 * A file that looks like WAL-E's console script (pip's form) to walePython,
 * run by /usr/bin/python3: a fake runtime then sees the backup worker's argv.
 */
export function fakeWaleBin(dir: string): string {
  const path = join(dir, "wal-e");
  writeFileSync(path, "#!/usr/bin/python3\nfrom wal_e.cmd import main\n");
  chmodSync(path, 0o755);
  return path;
}

/** What src/workers/backup.py prints for a backup that went through. */
export const BACKUP_DONE = [
  "started base_000000010000000000000002_00000040 0/2000028",
  "uploaded 1 23187818",
  "stopped 0/2000158",
  "done base_000000010000000000000002_00000040",
  "",
].join("\n");
