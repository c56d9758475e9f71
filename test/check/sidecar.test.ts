import { expect, test } from "bun:test";
import { between, since, walPushAnswers } from "../../src/check/sidecar.ts";
import { Metrics } from "../../src/observe/metrics.ts";

test("walPushAnswers reads /wal-push's counts by status from the sidecar's own /metrics text", async () => {
  const metrics = new Metrics();
  metrics.request("/wal-push", 200);
  metrics.request("/wal-push", 200);
  metrics.request("/wal-push", 401);
  metrics.request("/wal-fetch", 404);
  metrics.request("unauthorized", 401);
  expect(walPushAnswers(await metrics.text())).toEqual({ "200": 2, "401": 1 });
  expect(walPushAnswers("")).toEqual({});
});

test("since and between: what was added, and unasked wins", () => {
  expect(since({ "200": 2, "500": 1 }, { "200": 5, "500": 1, "401": 2 })).toEqual({ "200": 3, "401": 2 });
  const counted = (answered: Record<string, number>) => ({ kind: "counted" as const, url: "http://s", answered });
  const unasked = { kind: "unasked" as const, url: "http://s", reason: "refused" };
  expect(between(counted({ "200": 1 }), counted({ "200": 1, "401": 1 }))).toEqual(counted({ "401": 1 }));
  expect(between(unasked, counted({}))).toEqual(unasked);
  expect(between(counted({}), unasked)).toEqual(unasked);
});
