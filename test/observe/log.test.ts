import { expect, test } from "bun:test";
import { createLogger, redactor } from "../../src/observe/log.ts";

test("JSON lines, with secrets redacted wherever they appear", () => {
  const lines: string[] = [];
  const log = createLogger((l) => lines.push(l), redactor(["hunter22", "hunter22-longer"]));
  log.info("request", { stderr: 'key="hunter22-longer" and hunter22', status: 200 });
  expect(lines).toHaveLength(1);
  const line = JSON.parse(lines[0] as string);
  expect(line).toMatchObject({ level: "info", msg: "request", status: 200, stderr: 'key="[REDACTED]" and [REDACTED]' });
  expect(lines[0]).not.toContain("hunter22");
});

test("text lines for humans", () => {
  const lines: string[] = [];
  const log = createLogger((l) => lines.push(l), redactor(["s3cret"]), "text");
  log.warn("request", { route: "/wal-push", status: 404, reason: "not in PGWAL s3cret", skipped: undefined });
  expect(lines[0]).toMatch(
    /^\d{4}-\d\d-\d\dT\S+ WARN {2}request route=\/wal-push status=404 reason="not in PGWAL \[REDACTED\]"\n$/,
  );
});

test('a secret holding ", \\ or a control character is redacted before it is serialised, in JSON and in text', () => {
  const secret = 'ab"c\\d\te\u0001fghijklmnop';
  const redact = redactor([secret]);
  for (const format of ["json", "text"] as const) {
    const lines: string[] = [];
    createLogger((l) => lines.push(l), redact, format).error("wal-e failed", { stderr: `key ${secret} rejected` });
    for (const form of [secret, JSON.stringify(secret).slice(1, -1), "fghijklmnop"]) {
      expect(lines[0]).not.toContain(form);
    }
    expect(lines[0]).toContain("[REDACTED]");
  }
});
