/** Secrets from the environment never leave the compiled sidecar, not even when WAL-E prints them. */
import { expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { script, startSidecar, useScope } from "../support/harness.ts";

const scope = useScope();

test("a WAL-E that prints every credential: the body and the log show [REDACTED]", async () => {
  const dir = scope.tempDir("pgdata");
  mkdirSync(join(dir, "pg_wal"));
  const SEG = "000000010000000000000001";
  writeFileSync(join(dir, "pg_wal", SEG), "");
  const leaky = script(dir, "leaky", 'env >&2\necho "boto: key $AWS_SECRET_ACCESS_KEY rejected" >&2\nexit 1');
  const secrets = {
    AWS_SECRET_ACCESS_KEY: "aws-secret-ABCDEF123456",
    WABS_ACCESS_KEY: "wabs-access-key-987654",
    GS_APPLICATION_CREDS: "gs-private-key-555",
    WALE_SWIFT_PASSWORD: "swift-pass-4444",
    WALE_SIDECAR_TOKEN: "sidecar-token-0123456789",
  };
  const sidecar = await startSidecar(scope, { PGDATA: dir, WALE_BIN: leaky, ...secrets });
  const response = await fetch(`${sidecar.url}/wal-push/${SEG}`, {
    headers: { authorization: `Bearer ${secrets.WALE_SIDECAR_TOKEN}` },
  });
  const body = await response.text();
  expect(response.status).toBe(500);
  expect(body).toContain("boto: key [REDACTED] rejected");
  await sidecar.stop();
  const everything = body + sidecar.output();
  expect(sidecar.output()).toContain("[REDACTED]");
  for (const value of Object.values(secrets)) expect(everything).not.toContain(value);
}, 30_000);
