import { describe, expect, test } from "bun:test";
import { createAnswer, json, Responses, text } from "../../src/http/responses.ts";
import { createLogger, redactor } from "../../src/observe/log.ts";
import { Metrics } from "../../src/observe/metrics.ts";
import { Busy, ShuttingDown } from "../../src/wale/errors.ts";

const SECRET = "wJalrXUtnFEMI/K7MDENG";

function answerer() {
  const lines: Array<Record<string, unknown>> = [];
  const redact = redactor([SECRET]);
  const log = createLogger((line) => lines.push(JSON.parse(line)), redact);
  const metrics = new Metrics();
  return { answer: createAnswer({ metrics, log, redact }), lines, metrics };
}
const request = new Request("http://127.0.0.1/wal-push/000000010000000000000003");

describe("responses", () => {
  test("text and json: their content types; json ends with a newline", async () => {
    expect(text(200, "pong\n").headers.get("content-type")).toBe("text/plain; charset=utf-8");
    const body = json(200, { a: 1 });
    expect(body.headers.get("content-type")).toBe("application/json");
    expect(await body.text()).toBe('{\n  "a": 1\n}\n');
    expect(Responses({ 200: "ok" })).toEqual({ 200: { description: "ok" } });
  });
  test.each([
    ["Busy", new Busy("busy: 4 WAL-E runs and 8 queued")],
    ["ShuttingDown", new ShuttingDown("shutting down; retry against the new instance")],
  ])("work turned away (%s) is a 503 with Retry-After, its message the body", async (_, error) => {
    const { answer, lines, metrics } = answerer();
    const response = await answer(request, "wal-push", () => Promise.reject(error));
    expect(await metrics.text()).toMatch(/route="\/wal-push",status="503"\} 1/);
    expect(response.status).toBe(503);
    expect(response.headers.get("retry-after")).toBe("1");
    expect(await response.text()).toBe(`${error.message}\n`);
    expect(lines.at(-1)).toMatchObject({ level: "error", msg: "request", route: "/wal-push", status: 503 });
  });
  test("any other error is not turned into an answer: it is thrown on", async () => {
    const { answer } = answerer();
    await expect(answer(request, "wal-push", () => Promise.reject(new Error("a bug")))).rejects.toThrow("a bug");
  });
  test("one log line per answer, its level by status; the body and the log are redacted", async () => {
    const { answer, lines } = answerer();
    const wale = { exitCode: 1, stdout: "", stderr: `AccessDenied for ${SECRET}\n`, ms: 12.4, timedOut: false };
    const failed = await answer(request, "wal-push", async () => ({
      operation: "wal-push",
      status: 500,
      body: `wal-push failed: ${SECRET}\n`,
      file: "000000010000000000000003",
      wale,
    }));
    expect(await failed.text()).toBe("wal-push failed: [REDACTED]\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: "error",
      status: 500,
      exit: 1,
      wale_ms: 12,
      file: "000000010000000000000003",
    });
    expect(JSON.stringify(lines[0])).not.toContain(SECRET);
    const refused = await answer(request, "wal-push", async () => ({
      operation: "wal-push",
      status: 400,
      body: "bad\n",
    }));
    expect(refused.status).toBe(400);
    expect(lines[1]).toMatchObject({ level: "warn", reason: "bad" });
    await answer(request, "wal-push", async () => ({
      operation: "wal-push",
      status: 200,
      body: "archived x\n",
      synced: 2,
    }));
    expect(lines[2]).toMatchObject({ level: "info", status: 200, synced: 2 });
  });
  test("bytes go out as application/octet-stream, a confirmed absence marked x-wal-missing", async () => {
    const { answer } = answerer();
    const bytes = new Uint8Array([1, 2, 3]);
    const hit = await answer(request, "wal", async () => ({ operation: "wal", status: 200, body: "", bytes }));
    expect(hit.headers.get("content-type")).toBe("application/octet-stream");
    expect(hit.headers.get("content-length")).toBe("3");
    expect(hit.headers.get("x-wal-missing")).toBeNull();
    expect(new Uint8Array(await hit.arrayBuffer())).toEqual(bytes);
    const miss = await answer(request, "wal", async () => ({
      operation: "wal",
      status: 200,
      body: "",
      bytes: new Uint8Array(),
      missing: true,
    }));
    expect(miss.headers.get("x-wal-missing")).toBe("true");
  });
  test("a body that is JSON is answered as JSON", async () => {
    const { answer } = answerer();
    const listed = await answer(request, "backup-list", async () => ({
      operation: "backup-list",
      status: 200,
      body: "[]\n",
    }));
    expect(listed.headers.get("content-type")).toBe("application/json");
  });
});
