/**
 * Bun closes a connection idle for 10 s by default. A base backup sends
 * nothing until it is done, so the compiled sidecar must keep a silent
 * request open for as long as the backup runs.
 */
import { expect, test } from "bun:test";
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BACKUP_DONE } from "../support/fake-runtime.ts";
import { script, startSidecar, useScope } from "../support/harness.ts";

const scope = useScope();

test("a request that waits 12 s on the backup worker still gets its answer", async () => {
  const dir = scope.tempDir("slow");
  // A stand-in for WAL-E's Python: the backup worker it runs takes 12 s, then says it is done.
  const python = script(dir, "python3", `sleep 12\nprintf '%s' '${BACKUP_DONE}'`);
  const wale = join(dir, "wal-e");
  writeFileSync(wale, `#!${python}\nfrom wal_e.cmd import main\n`);
  chmodSync(wale, 0o755);
  const sidecar = await startSidecar(scope, { PGDATA: dir, WALE_BIN: wale });
  const response = await fetch(`${sidecar.url}/backup-push`);
  expect(await response.text()).toStartWith("backup complete");
  expect(response.status).toBe(200);
}, 30_000);

test("a connection idle without a request in flight is closed after about 10 s: silent, half a request, or kept alive", async () => {
  const dir = scope.tempDir("idle");
  const sidecar = await startSidecar(scope, { PGDATA: dir });
  const closedAfter = async (send: string) => {
    const started = Date.now();
    let closed: (ms: number) => void = () => {};
    const done = new Promise<number>((resolve) => (closed = resolve));
    const socket = await Bun.connect({
      hostname: "127.0.0.1",
      port: sidecar.port,
      socket: { data() {}, close: () => closed(Date.now() - started), error: () => closed(Date.now() - started) },
    });
    if (send) socket.write(send);
    const timer = setTimeout(() => socket.end(), 40_000);
    const ms = await done;
    clearTimeout(timer);
    return ms;
  };
  const [silent, half, kept] = await Promise.all([
    closedAfter(""),
    closedAfter("GET /ping HTTP/1.1\r\nHost: a\r\n"),
    // A keep-alive connection, idle once its request is answered.
    closedAfter("GET /ping HTTP/1.1\r\nHost: a\r\n\r\n"),
  ]);
  for (const ms of [silent, half, kept]) {
    expect(ms).toBeGreaterThanOrEqual(8_000);
    expect(ms).toBeLessThan(30_000);
  }
}, 60_000);
