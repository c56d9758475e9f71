/**
 * Load: 10,000 /wal-push requests over up to 500 concurrent connections to
 * the compiled sidecar, with a no-op engine (a script that exits 0), so that
 * what is measured is the sidecar itself. It must not crash, answer only 200
 * or 503, and its memory must not keep what the requests used. A leak check,
 * not a benchmark: nothing here is timed.
 */
import { expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { script, startSidecar, useScope } from "../support/harness.ts";

const scope = useScope();
const REQUESTS = 10_000;
const CONNECTIONS = 500;
const WARM_UP = 1_000;
const SEGMENTS = 100;
const MAX_GROWTH_MB = 64;

const segment = (i: number) => `0000000100000000${(i % SEGMENTS).toString(16).toUpperCase().padStart(8, "0")}`;

/**
 * One GET on a connection of its own, with raw sockets: fetch pools and caps
 * its connections, and this test needs each of the 500 open. Resolves with
 * the status, or the socket error's code.
 */
function get(port: number, path: string): Promise<string> {
  return new Promise((resolve) => {
    let head = "";
    const socket = connect(port, "127.0.0.1", () =>
      socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`),
    );
    socket.setEncoding("latin1");
    socket.on("data", (chunk: string) => {
      if (head.length < 64) head += chunk;
    });
    socket.on("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? "error"));
    socket.on("close", () => resolve(head.match(/^HTTP\/1\.1 (\d{3}) /)?.[1] ?? "no status line"));
  });
}

/** Sends `count` pushes over at most `connections` at a time; counts the answers by status. */
async function pushes(port: number, count: number, connections: number): Promise<Map<string, number>> {
  const statuses = new Map<string, number>();
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < count; i = next++) {
      const status = await get(port, `/wal-push/${segment(i)}`);
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: connections }, worker));
  return statuses;
}

const rssMb = (pid: number) =>
  Number(readFileSync(`/proc/${pid}/status`, "utf8").match(/^VmRSS:\s+(\d+) kB$/m)?.[1]) / 1024;

test(`${REQUESTS} pushes over ${CONNECTIONS} connections: no crash, only 200 or 503, bounded memory`, async () => {
  const dir = scope.tempDir("load");
  mkdirSync(join(dir, "pg_wal"));
  for (let i = 0; i < SEGMENTS; i++) writeFileSync(join(dir, "pg_wal", segment(i)), "");
  const noop = script(dir, "noop", "exit 0");
  const sidecar = await startSidecar(scope, { PGDATA: dir, WALE_BIN: noop });

  // Measure from a sidecar that has served traffic once: the first requests load code and grow heaps for good.
  const warm = await pushes(sidecar.port, WARM_UP, CONNECTIONS);
  await Bun.sleep(2_000);
  const before = rssMb(sidecar.pid);

  const statuses = await pushes(sidecar.port, REQUESTS, CONNECTIONS);
  await Bun.sleep(2_000);
  const after = rssMb(sidecar.pid);
  console.log(
    `load: ${REQUESTS} /wal-push over ${CONNECTIONS} connections: ${JSON.stringify(Object.fromEntries(statuses))}; ` +
      `sidecar RSS ${before.toFixed(1)} MB before, ${after.toFixed(1)} MB after (${(after - before).toFixed(1)} MB growth)`,
  );

  expect([...statuses.values()].reduce((a, b) => a + b, 0)).toBe(REQUESTS);
  expect([...statuses.keys()].filter((s) => s !== "200" && s !== "503")).toEqual([]);
  expect(statuses.get("200")).toBeGreaterThan(0);
  expect(after - before).toBeLessThan(MAX_GROWTH_MB);

  // Still up, and it counted every 200 it sent.
  expect(existsSync(`/proc/${sidecar.pid}`)).toBe(true);
  expect(await (await fetch(`${sidecar.url}/ping`)).text()).toContain("pong");
  const metrics = await (await fetch(`${sidecar.url}/metrics`)).text();
  const counted = Number(metrics.match(/^wale_sidecar_requests_total\{route="\/wal-push",status="200"\} (\d+)$/m)?.[1]);
  expect(counted).toBe((warm.get("200") ?? 0) + (statuses.get("200") ?? 0));
}, 240_000);
