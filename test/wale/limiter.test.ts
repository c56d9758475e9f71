import { expect, test } from "bun:test";
import { Busy } from "../../src/wale/errors.ts";
import { Limiter } from "../../src/wale/limiter.ts";

test("runs at most max at once, queues up to maxQueue, and turns the rest away with Busy (the HTTP edge answers 503: test/http/routes.test.ts)", async () => {
  const limiter = new Limiter(2, 1);
  const a = await limiter.acquire();
  const b = await limiter.acquire();
  let cGot = false;
  const c = limiter.acquire().then((release) => {
    cGot = true;
    return release;
  });
  expect(limiter.queued).toBe(1);
  const d = await limiter.acquire().catch((e) => e);
  expect(d).toBeInstanceOf(Busy);
  expect((d as Busy).message).toMatch(/^busy: 2 WAL-E runs and 1 waiting/);
  expect(cGot).toBe(false);
  a();
  a(); // releasing twice frees one slot only
  const releaseC = await c;
  expect(cGot).toBe(true);
  expect(limiter.queued).toBe(0);
  // mustRun work queues past the bound.
  const e = limiter.acquire(true);
  const f = limiter.acquire(true);
  expect(limiter.queued).toBe(2);
  b();
  releaseC();
  (await e)();
  (await f)();
  // Everything released: two slots free again.
  const [g, h] = [await limiter.acquire(), await limiter.acquire()];
  g();
  h();
});
