/**
 * No Docker engine runs here, so the Dockerfile is kept honest by reading it:
 *   1. dockerfile-utils' validator finds no problem;
 *   2. the runtime stage installs the same Debian packages as scripts/setup.sh
 *      (RUNTIME_DEBS), and WAL-E from the same requirements file, compiled
 *      to bytecode as setup.sh does;
 *   3. the build stage uses the Bun version that setup.sh installs;
 *   4. the entry point, command, user and health check are the promised ones.
 */
import { validate } from "dockerfile-utils";

const root = new URL("..", import.meta.url).pathname;
const dockerfile = await Bun.file(`${root}Dockerfile`).text();
const setup = await Bun.file(`${root}scripts/setup.sh`).text();
const problems: string[] = [];

for (const d of validate(dockerfile)) {
  problems.push(`Dockerfile:${d.range.start.line + 1}: ${d.message}`);
}

const runtimeStage = dockerfile.slice(dockerfile.search(/^FROM .* AS runtime$/m));
const words = (s: string) => s.split(/\s+/).filter(Boolean).sort();
const setupDebs = words(setup.match(/^RUNTIME_DEBS=\(([^)]*)\)/m)?.[1] ?? "");
const installLine = runtimeStage.match(/apt-get install -y --no-install-recommends \\\n([^&]*)&&/)?.[1] ?? "";
const dockerDebs = words(installLine.replace(/\\/g, ""));
if (setupDebs.length === 0 || setupDebs.join(" ") !== dockerDebs.join(" ")) {
  problems.push(`runtime packages differ: setup.sh has [${setupDebs}], Dockerfile has [${dockerDebs}]`);
}
if (!runtimeStage.includes("pip install --no-cache-dir --disable-pip-version-check -r /tmp/wal-e-requirements.txt")) {
  problems.push("the runtime stage must install WAL-E from scripts/wal-e-requirements.txt");
}
// WAL-E compiled to bytecode at install, as setup.sh does (see there).
if (!setup.includes('/bin/python" -m compileall -q "$WALE_VENV"/lib/python3*/site-packages/wal_e')) {
  problems.push("setup.sh must compile WAL-E to bytecode");
}
if (!runtimeStage.includes("/opt/wal-e/bin/python -m compileall -q /opt/wal-e/lib/python3*/site-packages/wal_e")) {
  problems.push("the runtime stage must compile WAL-E to bytecode, as setup.sh does");
}
const bunInSetup = setup.match(/^BUN_VERSION="([^"]+)"/m)?.[1];
const bunInDocker = dockerfile.match(/^ARG BUN_VERSION=(\S+)/m)?.[1];
if (!bunInSetup || bunInSetup !== bunInDocker)
  problems.push(`Bun versions differ: setup.sh ${bunInSetup}, Dockerfile ${bunInDocker}`);

const expect = [
  'ENTRYPOINT ["tini", "--", "wale-sidecar"]',
  'CMD ["serve"]',
  "USER postgres",
  'CMD ["wale-sidecar", "ping"]',
  "COPY --from=build /src/dist/wale-sidecar /usr/local/bin/wale-sidecar",
];
for (const line of expect) if (!runtimeStage.includes(line)) problems.push(`the runtime stage lacks: ${line}`);

if (problems.length > 0) {
  console.error(problems.join("\n"));
  process.exit(1);
}
console.log("Dockerfile: ok (validator clean, runtime packages and WAL-E match scripts/setup.sh)");
