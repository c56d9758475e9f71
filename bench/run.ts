/**
 * The benchmark: `bun run bench` (full, about 10 minutes on 2 cores: 625 s on 2026-12-03) or
 * `bun run bench --smoke` (tiny sizes, for CI; also BENCH_SMOKE=1).
 * `--only=archiving,restore` runs those sections (by the names below:
 * trigger, archiving, restore, binary, backup, verify) and keeps the others'
 * figures from the last results.json, each marked with the date it was run;
 * one the last run lacks is listed as not run, never dropped.
 *
 * Writes bench/results.md and bench/results.json (the smoke run:
 * bench/smoke-results.*, git-ignored). Sections, one module each:
 *   1. trigger.ts         /wal-push with a no-op engine against spawning it directly
 *   2. archive.ts         PostgreSQL 15 archiving through the sidecar against WAL-E directly
 *   3. restore-section.ts runs bench/restore.ts, PostgreSQL 15 restoring through the sidecar against pgBackRest
 *   4. binary.ts          exec to first /ping, RSS, size
 *   5. backup.ts          base backups of ~1 GB: the backup worker against stock WAL-E and pgBackRest
 *   6. verify.ts          `wale-sidecar verify` listing 20,000 segment objects, file:// and S3 (moto)
 * Needs scripts/setup.sh and `bun run build` first. It asserts nothing about speed.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { run, Scope, TOOLS } from "../test/support/harness.ts";
import { archiving } from "./archive.ts";
import { backups } from "./backup.ts";
import { theBinary } from "./binary.ts";
import type { Section } from "./figures.ts";
import { restore } from "./restore-section.ts";
import { triggerOverhead } from "./trigger.ts";
import { verifyListing } from "./verify.ts";

const smoke = Bun.argv.includes("--smoke") || process.env.BENCH_SMOKE === "1";

const SIZES = smoke
  ? {
      trigger: { seconds: 1, repeats: 1 },
      archive: { segments: 3, rows: 1000, repeats: 1, backlog: 3, backlogRepeats: 1 },
      restore: { segments: 2, smoke },
      binary: { starts: 2, sidecars: 1, requests: 200, clients: 8 },
      backup: { scale: 1, repeats: 1 },
      verify: { objects: 300, repeats: 1 },
    }
  : {
      trigger: { seconds: 5, repeats: 3 },
      archive: { segments: 64, rows: 60_000, repeats: 7, backlog: 48, backlogRepeats: 3 },
      restore: { segments: 64, smoke },
      binary: { starts: 15, sidecars: 3, requests: 10_000, clients: 8 },
      backup: { scale: 70, repeats: 2 },
      verify: { objects: 20_000, repeats: 3 },
    };

const firstLine = async (argv: string[]) => (await run(argv, { check: false })).stdout.split("\n")[0]?.trim() ?? "";

/** The 1, 5 and 15 minute load averages: anything else running on the machine skews every figure. */
const loadAverage = async () => (await Bun.file("/proc/loadavg").text()).split(" ").slice(0, 3).join(" ");

async function machine() {
  const cpu = (await Bun.file("/proc/cpuinfo").text()).match(/^model name\s*:\s*(.*)$/m)?.[1] ?? "unknown";
  return {
    date: new Date().toISOString(),
    cpu,
    cores: navigator.hardwareConcurrency,
    kernel: await firstLine(["uname", "-r"]),
    bun: Bun.version,
    postgres: await firstLine([join(TOOLS.pgBin[15], "postgres"), "--version"]),
    wale: await firstLine([TOOLS.wale, "version"]),
    wrk: await firstLine(["wrk", "--version"]),
    loadBefore: await loadAverage(),
    loadAfter: "",
  };
}

async function section(name: string, measure: (scope: Scope) => Promise<Section>): Promise<Section> {
  console.error(`bench: ${name}...`);
  const started = performance.now();
  const scope = new Scope();
  try {
    return await measure(scope);
  } finally {
    await scope.close();
    console.error(`bench: ${name} done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }
}

const cell = (text: string) => text.replaceAll("|", "\\|");

function markdown(env: Awaited<ReturnType<typeof machine>>, sections: Section[]): string {
  const out = [
    `# wale-sidecar benchmark${smoke ? " (smoke run: tiny sizes, figures mean nothing)" : ""}`,
    "",
    `${env.date} on ${env.cores} cores (${env.cpu}), Linux ${env.kernel}; Bun ${env.bun}, ${env.postgres}, ` +
      `WAL-E ${env.wale}, ${env.wrk.split(" [")[0]}. Command: \`bun run bench${smoke ? " --smoke" : ""}${only ? ` --only=${only.join(",")}` : ""}\`. ` +
      `Load average (1, 5, 15 min) before: ${env.loadBefore}; after: ${env.loadAfter}.`,
  ];
  sections.forEach((s, i) => {
    out.push("", `## ${i + 1}. ${s.title}`, "");
    if (s.figures.length > 0) {
      out.push("| Measure | Result | Target | |", "| --- | ---: | --- | --- |");
      for (const f of s.figures) {
        const verdict = f.met === undefined ? "" : f.met ? "met" : "**not met**";
        out.push(
          `| ${cell(f.name)} | ${f.value}${f.unit ? ` ${f.unit}` : ""} | ${cell(f.target ?? "")} | ${verdict} |`,
        );
      }
      out.push("");
    }
    for (const note of s.notes) out.push(`- ${note}`);
  });
  return `${out.join("\n")}\n`;
}

const SECTIONS: Record<string, (scope: Scope) => Promise<Section>> = {
  trigger: (scope) => triggerOverhead(scope, SIZES.trigger),
  archiving: () => archiving(SIZES.archive),
  restore: (scope) => restore(scope, SIZES.restore),
  binary: (scope) => theBinary(scope, SIZES.binary),
  backup: (scope) => backups(scope, SIZES.backup),
  verify: (scope) => verifyListing(scope, SIZES.verify),
};
const only = Bun.argv
  .find((arg) => arg.startsWith("--only="))
  ?.slice("--only=".length)
  .split(",")
  .filter(Boolean);
const unknown = (only ?? []).filter((name) => !(name in SECTIONS));
if (unknown.length > 0)
  throw new Error(`--only: no section ${unknown.join(", ")} (there are ${Object.keys(SECTIONS).join(", ")})`);

const base = join(import.meta.dir, smoke ? "smoke-results" : "results");
/** The sections of the last run, by name (a results.json without names: in the order above). */
function lastRun(): { date: string; sections: Map<string, Section> } {
  try {
    const last = JSON.parse(readFileSync(`${base}.json`, "utf8")) as { machine: { date: string }; sections: Section[] };
    const names = Object.keys(SECTIONS);
    const sections = new Map(last.sections.map((s, i) => [s.id ?? names[i] ?? String(i), s] as [string, Section]));
    return { date: last.machine.date, sections };
  } catch {
    return { date: "", sections: new Map() };
  }
}

const started = performance.now();
const previous = only ? lastRun() : null;
const env = await machine();
const sections: Section[] = [];
for (const [id, measure] of Object.entries(SECTIONS)) {
  const kept = previous?.sections.get(id);
  if (only && !only.includes(id)) {
    if (kept) {
      const note = `Not run in this run (\`--only=${only.join(",")}\`): these figures are from the run of ${kept.ranAt ?? previous?.date}.`;
      sections.push({
        ...kept,
        id,
        ranAt: kept.ranAt ?? previous?.date,
        notes: [note, ...kept.notes.filter((n) => !n.startsWith("Not run in this run"))],
      });
    } else {
      // Kept in its place, so that the sections keep their numbers, and said so rather than dropped.
      const note = `not run: skipped by \`--only=${only.join(",")}\`, and the last results.json has no figures of it (\`bun run bench --only=${id}\` measures it).`;
      sections.push({ title: id, id, figures: [], notes: [note] });
    }
    continue;
  }
  sections.push({ ...(await section(id, measure)), id, ranAt: env.date });
}
env.loadAfter = await loadAverage();
writeFileSync(`${base}.json`, `${JSON.stringify({ smoke, machine: env, sizes: SIZES, sections }, null, 2)}\n`);
writeFileSync(`${base}.md`, markdown(env, sections));
const missed = sections.flatMap((s) => s.figures.filter((f) => f.met === false).map((f) => `${s.title}: ${f.name}`));
console.error(`bench: wrote ${base}.md and ${base}.json in ${((performance.now() - started) / 1000).toFixed(0)} s`);
if (missed.length > 0) console.error(`bench: targets not met:\n  ${missed.join("\n  ")}`);
