import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serve } from "../../src/cli/serve.ts";
import { isLoopback } from "../../src/config/exposure.ts";
import { type Access, createGate, exposureWarning } from "../../src/http/auth.ts";
import { fakeRuntime } from "../support/fake-runtime.ts";

const TOKEN = "0123456789abcdef-token";
const request = (authorization?: string) =>
  new Request("http://sidecar/x", { headers: authorization ? { authorization } : {} });

describe("the gate", () => {
  const gate = (token: string | undefined, hostname: string, draining = false) =>
    createGate({ token, listen: { hostname }, lifecycle: { draining } });
  const status = (verdict: ReturnType<ReturnType<typeof createGate>>) => (verdict.allowed ? 200 : verdict.status);

  test("open routes answer anyone, also while shutting down; trusted only with the token", () => {
    const g = gate(TOKEN, "0.0.0.0", true);
    expect(g("open", request())).toEqual({ allowed: true, trusted: false });
    expect(g("open", request(`Bearer ${TOKEN}`))).toEqual({ allowed: true, trusted: true });
    expect(gate(undefined, "0.0.0.0")("open", request())).toEqual({ allowed: true, trusted: true });
  });
  test.each<[Access | undefined, string | undefined, string, string | undefined, number]>([
    ["guarded", TOKEN, "0.0.0.0", undefined, 401],
    ["guarded", TOKEN, "0.0.0.0", `Bearer ${TOKEN}x`, 401],
    ["guarded", TOKEN, "0.0.0.0", `Bearer ${TOKEN}`, 200],
    ["guarded", undefined, "0.0.0.0", undefined, 200],
    ["archive", undefined, "0.0.0.0", undefined, 403],
    ["archive", undefined, "::", undefined, 403],
    ["archive", undefined, "wale", undefined, 403],
    ["archive", undefined, "127.0.0.1", undefined, 200],
    ["archive", undefined, "::1", undefined, 200],
    ["archive", undefined, "localhost", undefined, 200],
    ["archive", TOKEN, "0.0.0.0", undefined, 401],
    ["archive", TOKEN, "0.0.0.0", `Bearer ${TOKEN}`, 200],
    // A route that declares nothing is refused, token or not.
    [undefined, undefined, "127.0.0.1", undefined, 403],
    [undefined, TOKEN, "0.0.0.0", `Bearer ${TOKEN}`, 403],
  ])("%s route, token %s, listening on %s, Authorization %s: %d", (access, token, host, authorization, expected) => {
    expect(status(gate(token, host)(access, request(authorization)))).toBe(expected);
  });
  test("the archive's 403 names WALE_SIDECAR_TOKEN; guarded routes get 503 while shutting down", () => {
    const refused = gate(undefined, "0.0.0.0")("archive", request());
    expect(refused.allowed ? "" : refused.body).toMatch(/^forbidden: .*WALE_SIDECAR_TOKEN/);
    expect(status(gate(undefined, "127.0.0.1", true)("guarded", request()))).toBe(503);
  });
  test("loopback", () => {
    for (const host of ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST"])
      expect(isLoopback(host)).toBe(true);
    for (const host of ["0.0.0.0", "::", "", "10.0.0.1", "wale", "128.0.0.1", "127.0.0.1.nip.io"])
      expect(isLoopback(host)).toBe(false);
  });
});

describe("serve warns at start, once, with no token on a non-loopback address", () => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), "auth-serve-")));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Runs `serve` on a runtime that listens nowhere, until it logs "listening"; then stops it. */
  async function start(env: Record<string, string>) {
    const out: string[] = [];
    const listeners: Array<() => void> = [];
    const runtime = {
      ...fakeRuntime().runtime,
      env: () => ({ PGDATA: join(dir, "data"), WALE_SPOOL_DIR: join(dir, "spool"), WALE_PREFETCH: "0", ...env }),
      serve: () => ({ port: 8080, stop: async () => {} }),
      onSignal: (_: string, listener: () => void) => void listeners.push(listener),
      stdout: (text: string) => void out.push(text),
    };
    const exit = serve.run(runtime, []);
    for (let i = 0; i < 200 && !out.join("").includes('"listening"'); i++)
      await new Promise((resolve) => setTimeout(resolve, 10));
    for (const listener of listeners) listener();
    expect(await exit).toBe(0);
    return out
      .join("")
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line));
  }

  test("0.0.0.0 without a token: one warning line naming WALE_SIDECAR_TOKEN", async () => {
    const lines = await start({ WALE_LISTEN_HOST: "0.0.0.0" });
    const warnings = lines.filter((l) => l.level === "warn");
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ host: "0.0.0.0", port: 8080 });
    expect(warnings[0].msg).toMatch(
      /^no WALE_SIDECAR_TOKEN: anyone who can reach this port can trigger backups and fetches/,
    );
  });
  test.each<Record<string, string>>([
    { WALE_LISTEN_HOST: "127.0.0.1" },
    { WALE_LISTEN_HOST: "0.0.0.0", WALE_SIDECAR_TOKEN: TOKEN },
  ])("%o: no warning", async (env) => {
    expect((await start(env)).filter((l) => l.level === "warn")).toEqual([]);
  });
  test("exposureWarning", () => {
    expect(exposureWarning({ token: undefined, listen: { hostname: "0.0.0.0" } })).toMatch(/WALE_SIDECAR_TOKEN/);
    expect(exposureWarning({ token: TOKEN, listen: { hostname: "0.0.0.0" } })).toBeNull();
    expect(exposureWarning({ token: undefined, listen: { hostname: "::1" } })).toBeNull();
  });
});
