/** The Runtime on Deno 2. */
import { constants } from "node:os";
import { groupHasMembers } from "./pid.ts";
import type { Child, Runtime } from "./types.ts";

const encoder = new TextEncoder();

/** writeSync may write only part of a buffer. */
function writeAll(stream: { writeSync(p: Uint8Array): number }, text: string): void {
  const bytes = encoder.encode(text);
  for (let done = 0; done < bytes.length; ) done += stream.writeSync(bytes.subarray(done));
}

export const denoRuntime: Runtime = {
  name: "deno",

  spawn(argv, { env, stdio, input = false, newGroup = false }): Child {
    // Deno.Command cannot start a process group. setsid(1) makes the child
    // lead a new session and execs it (no fork: the pid stays the child's).
    const [program, ...args] = newGroup ? ["setsid", ...argv] : argv;
    if (program === undefined) throw new Error("spawn: empty argv");
    const piped = stdio === "pipe" ? "piped" : "inherit";
    const proc = new Deno.Command(program, {
      args,
      // Like Bun.spawn: the child gets exactly `env`, not ours merged with it.
      env,
      clearEnv: true,
      stdin: stdio === "inherit" ? "inherit" : input ? "piped" : "null",
      stdout: piped,
      stderr: piped,
    }).spawn();
    let reaped = false;
    proc.status.then(() => {
      reaped = true;
    });
    return {
      pid: proc.pid,
      exited: proc.status.then(({ code, signal }) =>
        signal ? 128 + ((constants.signals as Record<string, number>)[signal] ?? 0) : code,
      ),
      stdin: input && stdio === "pipe" ? proc.stdin : null,
      stdout: stdio === "pipe" ? proc.stdout : null,
      stderr: stdio === "pipe" ? proc.stderr : null,
      kill(signal) {
        try {
          if (!newGroup) return void proc.kill(signal);
          // Reaped with its group empty, the group id may be reused (see the Bun runtime).
          if (reaped && !groupHasMembers(proc.pid)) return;
          // A negative pid signals the process group the child leads.
          Deno.kill(-proc.pid, signal);
        } catch {
          // Already gone.
        }
      },
    };
  },

  serve(handler, { hostname, port }) {
    // onListen: Deno prints "Listening on ..." by default, which is not a JSON log line.
    const server = Deno.serve({ hostname, port, onListen() {} }, handler);
    // shutdown() stops listening and waits for the requests in flight.
    return { port: server.addr.port, stop: () => server.shutdown() };
  },

  onSignal(signal, listener) {
    Deno.addSignalListener(signal, listener);
  },
  env: () => Deno.env.toObject(),
  args: () => Deno.args,
  exit: (code) => Deno.exit(code),
  stdout: (text) => writeAll(Deno.stdout, text),
  stderr: (text) => writeAll(Deno.stderr, text),
};
