import { expect, test } from "bun:test";
import { createLogger, redactor } from "../src/log.ts";

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
