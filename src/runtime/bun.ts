/** The Runtime on Bun. */
import { constants } from "node:os";
import type { Child, Runtime, Signal } from "./types.ts";

const signalNumber = (signal: string | number | null): number =>
  typeof signal === "number" ? signal : (signal && (constants.signals as Record<string, number>)[signal]) || 0;

export const bunRuntime: Runtime = {
  name: "bun",

  spawn(argv, { env, stdio, input = false, newGroup = false }): Child {
    const proc = Bun.spawn(argv, {
      env,
      detached: newGroup,
      stdin: stdio === "inherit" ? "inherit" : input ? "pipe" : "ignore",
      stdout: stdio,
      stderr: stdio,
    });
    const sink = input && stdio === "pipe" ? (proc.stdin as import("bun").FileSink) : null;
    return {
      pid: proc.pid,
      exited: proc.exited.then(() => proc.exitCode ?? 128 + signalNumber(proc.signalCode)),
      // Bun's stdin is a FileSink; the rest of the code sees a web WritableStream.
      stdin: sink
        ? new WritableStream<Uint8Array>({
            write: async (chunk) => {
              sink.write(chunk);
              await sink.flush();
            },
            close: async () => void (await sink.end()),
            abort: async () => void (await sink.end()),
          })
        : null,
      stdout: stdio === "pipe" ? (proc.stdout as ReadableStream<Uint8Array>) : null,
      stderr: stdio === "pipe" ? (proc.stderr as ReadableStream<Uint8Array>) : null,
      kill(signal: Signal) {
        try {
          // A negative pid signals the process group the child leads.
          if (newGroup) process.kill(-proc.pid, signal);
          else proc.kill(signal);
        } catch {
          // Already gone.
        }
      },
    };
  },

  serve(handler, { hostname, port }) {
    const server = Bun.serve({
      hostname,
      port,
      fetch: handler,
      // Bun closes a connection idle for 10 s by default. A base backup, or a
      // wal-push to a slow store, sends nothing until WAL-E exits: a cut
      // connection there is a failed archive. 0 turns the limit off.
      idleTimeout: 0,
    });
    // Called once requests in flight are done: close idle keep-alive connections too.
    return { port: server.port ?? port, stop: () => server.stop(true) };
  },

  onSignal(signal, listener) {
    process.on(signal, listener);
  },
  env: () => process.env,
  args: () => Bun.argv.slice(2),
  exit: (code) => process.exit(code),
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
};
