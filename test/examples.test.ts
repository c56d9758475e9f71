/**
 * Every example in examples/ against the binary it deploys, so that an
 * example cannot drift from the code.
 *
 * A compose service or Kubernetes container is the sidecar when its image's
 * repository is `timescale-wale` (any registry, tag or digest). Only the
 * sidecar's environment is ours to check: TimescaleDB's POSTGRES_* is not.
 *   - every variable set on the sidecar is one the configuration knows: the
 *     sidecar's own (EnvSchema) or WAL-E's (WALE_VARIABLES);
 *   - every sidecar runs a subcommand that exists (COMMANDS);
 *   - every URL path in the examples (archive_command, restore_command...) and
 *     every probe path on the sidecar is a GET route of the app;
 *   - every probe path answers without WALE_SIDECAR_TOKEN: a Kubernetes
 *     probe cannot send a Secret, so a probe that needs the token fails forever.
 * What "exists" is read from the source when the test runs.
 */
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import { COMMANDS } from "../src/cli/dispatch.ts";
import { EnvSchema, isWaleVariable, parseConfig } from "../src/config/config.ts";
import { fakeRuntime, sidecarFor } from "./support/fake-runtime.ts";

/**
 * Names the examples use that other issues add (routes, variables,
 * subcommands). Empty this once they are merged.
 */
const PENDING_FROM_OTHER_ISSUES: string[] = [];

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const EXAMPLES = join(ROOT, "examples");
const SIDECAR_IMAGE = /^(?:[^/]+\/)*timescale-wale(?:[:@].*)?$/;

// ------------------------------------------------------------ what exists

const knownVariable = (name: string) => name in EnvSchema.properties || isWaleVariable(name);
const commandExists = (name: string) => COMMANDS.some((c) => c.name === name);
const routes = (() => {
  const { app } = sidecarFor(parseConfig({}), fakeRuntime().runtime);
  return app.routes
    .filter((r) => r.method === "GET")
    .map((r) => new RegExp(`^${r.path.replace(/:[^/]+/g, "[^/]+").replace(/\*/g, ".*")}$`));
})();
const routeExists = (path: string) => routes.some((route) => route.test(path));
/** Asks an app with a token set, as a probe does: without it. */
const needsToken = (() => {
  const { app } = sidecarFor(parseConfig({ WALE_SIDECAR_TOKEN: "probe-check-token-0123" }), fakeRuntime().runtime);
  return async (path: string) => [401, 403].includes((await app.handle(new Request(`http://probe${path}`))).status);
})();
/** The probe paths of the example's sidecars that get 401 or 403 without the token. */
async function probesNeedingToken(example: Example): Promise<string[]> {
  const out: string[] = [];
  for (const s of example.sidecars)
    for (const path of s.probes) if (await needsToken(path)) out.push(`${s.where}: ${path}`);
  return out;
}

// ------------------------------------------------------ reading examples

type Node = unknown;
type Obj = Record<string, Node>;
const isObj = (n: Node): n is Obj => typeof n === "object" && n !== null && !Array.isArray(n);
const strings = (n: Node): string[] =>
  typeof n === "string"
    ? [n]
    : Array.isArray(n)
      ? n.flatMap(strings)
      : isObj(n)
        ? Object.values(n).flatMap(strings)
        : [];
const objects = (n: Node): Obj[] =>
  Array.isArray(n) ? n.flatMap(objects) : isObj(n) ? [n, ...Object.values(n).flatMap(objects)] : [];
/** A compose command or entrypoint: a list, or a string split on white space. */
const argv = (n: Node): string[] =>
  Array.isArray(n) ? n.map(String) : typeof n === "string" ? n.split(/\s+/).filter(Boolean) : [];

/** A sidecar as an example runs it. */
interface Sidecar {
  where: string;
  env: string[];
  argv: string[];
  probes: string[];
  problems: string[];
}

function composeSidecars(doc: Obj): Sidecar[] {
  const services = isObj(doc.services) ? doc.services : {};
  return Object.entries(services)
    .filter(([, s]) => isObj(s) && SIDECAR_IMAGE.test(String(s.image)))
    .map(([name, s]) => {
      const service = s as Obj;
      const environment = service.environment;
      const env = Array.isArray(environment)
        ? environment.map((e) => String(e).split("=")[0] as string)
        : isObj(environment)
          ? Object.keys(environment)
          : [];
      const problems = service.env_file ? ["env_file hides the variables from this check: use environment"] : [];
      return {
        where: `service ${name}`,
        env,
        argv: [...argv(service.entrypoint), ...argv(service.command)],
        probes: [],
        problems,
      };
    });
}

function kubernetesSidecars(doc: Obj): Sidecar[] {
  const containers = objects(doc).flatMap(
    (o) => [o.containers, o.initContainers].filter(Array.isArray).flat() as Node[],
  );
  return containers
    .filter((c): c is Obj => isObj(c) && SIDECAR_IMAGE.test(String(c.image)))
    .map((c) => ({
      where: `container ${c.name}`,
      env: Array.isArray(c.env) ? c.env.map((e) => String((e as Obj).name)) : [],
      argv: [...argv(c.command), ...argv(c.args)],
      probes: objects([c.livenessProbe, c.readinessProbe, c.startupProbe])
        .map((o) => (isObj(o.httpGet) ? o.httpGet.path : undefined))
        .filter((p): p is string => typeof p === "string"),
      problems: c.envFrom ? ["envFrom hides the variables from this check: use env"] : [],
    }));
}

/** The subcommand: the image's entry point is `tini -- wale-sidecar`, and no argument means serve. */
function subcommand(args: string[]): string {
  const rest = [...args];
  if (rest[0] === "tini") rest.splice(0, rest.indexOf("--") + 1);
  if (rest[0]?.endsWith("wale-sidecar")) rest.shift();
  return rest[0] ?? "serve";
}

/** The paths of every http URL in the example, e.g. in archive_command. */
const urlPaths = (docs: Node[]) =>
  strings(docs).flatMap((s) => [...s.matchAll(/https?:\/\/[^\s"'/]+(\/[^\s"'?]*)/g)].map((m) => m[1] as string));

interface Example {
  file: string;
  docs: Node[];
  sidecars: Sidecar[];
}

function readExamples(): Example[] {
  const files = readdirSync(EXAMPLES, { recursive: true, encoding: "utf8" })
    .filter((f) => /\.ya?ml$/.test(f))
    .sort();
  return files.map((f) => {
    const file = relative(ROOT, join(EXAMPLES, f));
    const parsed = parseAllDocuments(readFileSync(join(EXAMPLES, f), "utf8"));
    const list = Array.isArray(parsed) ? parsed : [parsed];
    const errors = list.flatMap((d) => d.errors.map((e) => e.message));
    if (errors.length > 0) throw new Error(`${file}: ${errors.join("; ")}`);
    const docs = list.map((d) => d.toJS() as Node).filter(isObj);
    const sidecars = docs.flatMap((d) => ("services" in d ? composeSidecars(d) : kubernetesSidecars(d)));
    return { file, docs, sidecars };
  });
}

/** Names the example uses that the binary lacks. */
function missing(example: Example): string[] {
  const out = new Set<string>();
  for (const s of example.sidecars) {
    for (const name of s.env) if (!knownVariable(name)) out.add(name);
    const command = subcommand(s.argv);
    if (!commandExists(command)) out.add(command);
    for (const path of s.probes) if (!routeExists(path)) out.add(path);
  }
  for (const path of urlPaths(example.docs)) if (!routeExists(path)) out.add(path);
  return [...out];
}

// ----------------------------------------------------------------- tests

const examples = readExamples();

test("examples/ holds a compose file and Kubernetes manifests, each with a sidecar", () => {
  expect(examples.map((e) => e.file)).toEqual(
    expect.arrayContaining(["examples/docker-compose.yml", "examples/kubernetes/statefulset.yaml"]),
  );
  for (const file of ["examples/docker-compose.yml", "examples/kubernetes/statefulset.yaml"]) {
    expect(examples.find((e) => e.file === file)?.sidecars.length).toBeGreaterThan(0);
  }
});

describe.each(examples.filter((e) => e.sidecars.length > 0).map((e) => [e.file, e] as const))("%s", (_, example) => {
  test("uses only variables, routes and subcommands the binary has", () => {
    expect(missing(example).filter((name) => !PENDING_FROM_OTHER_ISSUES.includes(name))).toEqual([]);
  });

  test("every probe answers without the token (a probe cannot send a Secret)", async () => {
    expect(await probesNeedingToken(example)).toEqual([]);
  });

  test("every command and args entry is a string (an unquoted `: ` turns one into a YAML mapping)", () => {
    const lists = objects(example.docs).flatMap((o) => [o.command, o.args, o.entrypoint].filter(Array.isArray));
    expect(lists.flat().filter((entry) => typeof entry !== "string")).toEqual([]);
  });

  test("every sidecar is configured with env, not a file the check cannot read", () => {
    expect(example.sidecars.flatMap((s) => s.problems.map((p) => `${s.where}: ${p}`))).toEqual([]);
  });
});

test("the checks catch what they are for", async () => {
  const example: Example = {
    file: "made-up",
    docs: [{ command: ["archive_command=wget -q -O - http://wale/wal-pushh/%f"] }],
    sidecars: [
      {
        where: "made-up",
        env: ["WALE_LISTEN_PORT", "AWS_REGION", "WALE_LISTEN_PORTT"],
        argv: ["servee"],
        probes: ["/pingg"],
        problems: [],
      },
    ],
  };
  expect(missing(example).sort()).toEqual(["/pingg", "/wal-pushh/%f", "WALE_LISTEN_PORTT", "servee"]);
  const probed = (probes: string[]): Example => ({
    ...example,
    sidecars: [{ where: "made-up", env: [], argv: [], probes, problems: [] }],
  });
  expect(await probesNeedingToken(probed(["/metrics", "/healthz", "/readyz", "/backup-list"]))).toEqual([
    "made-up: /metrics",
    "made-up: /backup-list",
  ]);
  expect(subcommand(["tini", "--", "wale-sidecar", "wal-e", "backup-list"])).toBe("wal-e");
  expect(subcommand([])).toBe("serve");
});

test("PENDING_FROM_OTHER_ISSUES holds only names that an example uses and the binary still lacks", () => {
  const used = new Set(examples.flatMap(missing));
  for (const name of PENDING_FROM_OTHER_ISSUES)
    expect({ name, stillMissing: used.has(name) }).toEqual({ name, stillMissing: true });
});
