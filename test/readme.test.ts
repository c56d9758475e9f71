/**
 * README's citations of tests stay true: wherever it names a test file in
 * backticks (`test/<path>.test.ts`) and then quotes test names ("..."), up to
 * the next file, `;` or table cell, that file exists and declares a test of
 * each name. A name ending in "..." or "…" is a prefix; `%s` in a test.each
 * name is written as it is in the source.
 */
import { expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

export interface Citation {
  file: string;
  name: string;
}

/** Each (file, quoted name) pair the text cites. Markdown's `\"` and `\\` stand for `"` and `\`. */
export function citations(markdown: string): Citation[] {
  const found: Citation[] = [];
  const file = /`(test\/[\w./-]+\.test\.ts)`/g;
  for (const line of markdown.split("\n")) {
    const hits = [...line.matchAll(file)];
    hits.forEach((hit, i) => {
      const from = (hit.index ?? 0) + hit[0].length;
      const to = hits[i + 1]?.index ?? line.length;
      // The citation ends at the next file, or a clause (`;`) or table cell (`|`, not escaped) outside a name.
      for (const token of line.slice(from, to).matchAll(/"((?:[^"\\]|\\.)*)"|;|(?<!\\)\|/g)) {
        if (token[1] === undefined) break;
        found.push({ file: hit[1] ?? "", name: token[1].replace(/\\(["\\])/g, "$1") });
      }
    });
  }
  return found;
}

/** Does the source declare a test with this name (or, ending in "..." or "…", one that starts so)? */
export function declares(source: string, name: string): boolean {
  const prefix = name.replace(/(\.\.\.|…)$/, "");
  const whole = prefix === name;
  // The name as a string literal may escape its backslashes and its own quote.
  const spellings = [prefix, prefix.replaceAll("\\", "\\\\")];
  return spellings.some((s) =>
    ['"', "'", "`"].some((q) => {
      const escaped = s.replaceAll(q, `\\${q}`);
      return [s, escaped].some((t) => source.includes(whole ? `${q}${t}${q}` : `${q}${t}`));
    }),
  );
}

test("citations: a file, its quoted names up to the next file, clause or cell", () => {
  const md =
    '| a | `test/x.test.ts` "one", "two \\" quote" and "three; four..."; `test/y.test.ts` "four" | not "this" |\n' +
    'prose `test/z.test.ts` with no name; then "not a name"';
  expect(citations(md)).toEqual([
    { file: "test/x.test.ts", name: "one" },
    { file: "test/x.test.ts", name: 'two " quote' },
    { file: "test/x.test.ts", name: "three; four..." },
    { file: "test/y.test.ts", name: "four" },
  ]);
});

test("declares: the whole name in any quotes, a prefix when it ends in ..., escapes as the source writes them", () => {
  const source = `test('a ", \\\\ b', () => {});\ntest.each([])("x, %s: y", () => {});\ntest("long name here", f);`;
  expect(declares(source, 'a ", \\ b')).toBe(true);
  expect(declares(source, "x, %s: y")).toBe(true);
  expect(declares(source, "long name...")).toBe(true);
  expect(declares(source, "long name")).toBe(false);
  expect(declares(source, "x: y")).toBe(false);
});

test("every test the README cites is in the file it names", () => {
  const cited = citations(readFileSync(join(ROOT, "README.md"), "utf8"));
  expect(cited.length).toBeGreaterThan(20);
  const stale = cited.filter(({ file, name }) => {
    const path = join(ROOT, file);
    return !existsSync(path) || !declares(readFileSync(path, "utf8"), name);
  });
  expect(stale).toEqual([]);
});

/** The file map's entry for a top-level folder: its line and the indented lines under it. */
function entry(readme: string, folder: string): string {
  const lines = readme.split("\n");
  const start = lines.findIndex((l) => l.startsWith(`${folder}/ `));
  if (start < 0) return "";
  const end = lines.findIndex((l, i) => i > start && !l.startsWith(" "));
  return lines.slice(start, end < 0 ? undefined : end).join("\n");
}

test("the Development file map names every file of test/support/ and scripts/dashboard/", () => {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  for (const [folder, dir] of [
    ["test", "test/support"],
    ["scripts", "scripts/dashboard"],
  ] as const) {
    const text = entry(readme, folder);
    expect(text).not.toBe("");
    const unnamed = readdirSync(join(ROOT, dir)).filter((f) => !text.includes(f));
    expect({ dir, unnamed }).toEqual({ dir, unnamed: [] });
  }
});
