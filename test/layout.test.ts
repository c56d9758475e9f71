/**
 * The layout as a rule: src/'s folders in layers, each importing only the
 * layers below it, and no import circles, between folders or files. The
 * README's file map describes the same layers.
 */
import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const SRC = join(ROOT, "src");

/** Top first. A folder of src/ is named by itself, a file at src/'s root by its name. */
const LAYERS = [
  ["main.ts", "main.deno.ts"],
  ["cli"],
  ["sidecar.ts"],
  ["http"],
  ["operations"],
  ["backups", "restore", "check"],
  ["archive"],
  ["wal"],
  ["observe"],
  ["wale"],
  ["workers"],
  ["config", "runtime"],
  ["errors.ts", "text-imports.d.ts"],
];

const sources = (readdirSync(SRC, { recursive: true }) as string[])
  .filter((path) => path.endsWith(".ts"))
  .map((path) => join(SRC, path));

/** Every relative import of src/ (static, dynamic and `export … from`), as [importer, imported] files. */
const imports: Array<[string, string]> = sources.flatMap((file) =>
  [...readFileSync(file, "utf8").matchAll(/(?:\bfrom|\bimport)\s*\(?\s*["'](\.{1,2}\/[^"']+)["']/g)].map(
    (match): [string, string] => [file, resolve(dirname(file), match[1] as string)],
  ),
);
const inSrc = imports.filter(([, to]) => to.startsWith(`${SRC}/`));
const unit = (file: string) => relative(SRC, file).split("/")[0] as string;
const layerOf = (name: string) => LAYERS.findIndex((layer) => layer.includes(name));

/** A circle in the graph, as the path that closes it, or null. */
function circle(edges: Array<[string, string]>): string[] | null {
  const next = new Map<string, string[]>();
  for (const [from, to] of edges) next.set(from, [...(next.get(from) ?? []), to]);
  const state = new Map<string, "open" | "done">();
  const path: string[] = [];
  const visit = (node: string): string[] | null => {
    if (state.get(node) === "done") return null;
    if (state.get(node) === "open") return [...path.slice(path.indexOf(node)), node];
    state.set(node, "open");
    path.push(node);
    for (const to of next.get(node) ?? []) {
      const found = visit(to);
      if (found) return found;
    }
    path.pop();
    state.set(node, "done");
    return null;
  };
  for (const node of next.keys()) {
    const found = visit(node);
    if (found) return found;
  }
  return null;
}

test("the imports are read: every source file is found, and most import another", () => {
  expect(sources.length).toBeGreaterThan(30);
  expect(new Set(inSrc.map(([from]) => from)).size).toBeGreaterThan(sources.length / 2);
});

test("every folder and root file of src/ has its layer", () => {
  const units = [...new Set(sources.map(unit))].sort();
  expect(units.filter((name) => layerOf(name) === -1)).toEqual([]);
});

test("each layer imports only the layers below it", () => {
  const upward = inSrc
    .filter(([from, to]) => unit(from) !== unit(to) && layerOf(unit(from)) >= layerOf(unit(to)))
    .map(([from, to]) => `${relative(ROOT, from)} -> ${relative(ROOT, to)}`);
  expect(upward).toEqual([]);
});

test("no import circles between files", () => {
  const files = inSrc.map(([from, to]): [string, string] => [relative(ROOT, from), relative(ROOT, to)]);
  expect(circle(files)).toBeNull();
  // The check finds one where there is one.
  expect(circle([...files, ["src/wale/runner.ts", "src/sidecar.ts"]])).not.toBeNull();
});
