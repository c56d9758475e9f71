/**
 * "bun:test" on Deno, for the unit tests that need nothing else from Bun
 * (deno.json maps the specifier here). Jest's `expect` does the assertions;
 * describe, test, test.each and the hooks are laid over Deno.test.
 *
 * Deno loads each test file as its own module graph, so the top-level scope
 * below is one file's.
 */
import { expect } from "expect";

export { expect };

type Fn = () => unknown;

interface Scope {
  name: string;
  parent: Scope | null;
  beforeAll: Fn[];
  afterAll: Fn[];
  beforeEach: Fn[];
  afterEach: Fn[];
  /** Tests in this scope and below, and how many have finished. */
  tests: number;
  finished: number;
  started: boolean;
}

const newScope = (name: string, parent: Scope | null): Scope => ({
  name,
  parent,
  beforeAll: [],
  afterAll: [],
  beforeEach: [],
  afterEach: [],
  tests: 0,
  finished: 0,
  started: false,
});

let current = newScope("", null);

const chain = (scope: Scope): Scope[] => (scope.parent ? [...chain(scope.parent), scope] : [scope]);

async function runAll(hooks: Fn[]) {
  for (const hook of hooks) await hook();
}

export function describe(name: string, body: () => void): void {
  const parent = current;
  current = newScope(name, parent);
  try {
    body();
  } finally {
    current = parent;
  }
}

export function test(name: string, fn: (...args: never[]) => unknown, _timeout?: number): void {
  const scopes = chain(current);
  for (const scope of scopes) scope.tests++;
  const fullName = [...scopes.map((s) => s.name).filter(Boolean), name].join(" > ");
  Deno.test({
    name: fullName,
    // The tests clean up in afterAll hooks that Deno's sanitizers cannot see.
    sanitizeOps: false,
    sanitizeResources: false,
    async fn() {
      for (const scope of scopes) {
        if (!scope.started) {
          scope.started = true;
          await runAll(scope.beforeAll);
        }
      }
      try {
        for (const scope of scopes) await runAll(scope.beforeEach);
        await (fn as () => unknown)();
      } finally {
        for (const scope of [...scopes].reverse()) await runAll(scope.afterEach);
        for (const scope of [...scopes].reverse()) {
          scope.finished++;
          if (scope.finished === scope.tests) await runAll(scope.afterAll);
        }
      }
    },
  });
}

/** printf-style names as Bun formats them: %s %d %i %j %p %# %%. */
function title(template: string, args: unknown[], index: number): string {
  let next = 0;
  return template.replace(/%([sdijp#%])/g, (_, code: string) => {
    if (code === "%") return "%";
    if (code === "#") return String(index);
    const arg = args[next++];
    if (code === "s") return String(arg);
    if (code === "d" || code === "i") return String(Number(arg));
    return JSON.stringify(arg) ?? String(arg);
  });
}

test.each =
  (rows: readonly unknown[]) =>
  (name: string, fn: (...args: never[]) => unknown, timeout?: number): void => {
    rows.forEach((row, index) => {
      const args = Array.isArray(row) ? row : [row];
      test(title(name, args, index), () => (fn as (...a: unknown[]) => unknown)(...args), timeout);
    });
  };

describe.each =
  (rows: readonly unknown[]) =>
  (name: string, body: (...args: never[]) => void): void => {
    rows.forEach((row, index) => {
      const args = Array.isArray(row) ? row : [row];
      describe(title(name, args, index), () => (body as (...a: unknown[]) => void)(...args));
    });
  };

export const beforeAll = (fn: Fn) => void current.beforeAll.push(fn);
export const afterAll = (fn: Fn) => void current.afterAll.push(fn);
export const beforeEach = (fn: Fn) => void current.beforeEach.push(fn);
export const afterEach = (fn: Fn) => void current.afterEach.push(fn);
