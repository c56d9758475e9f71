/** The Runtime on Bun. */
import { constants } from "node:os";
import { groupHasMembers } from "./pid.ts";
import type { Child, Runtime, Signal } from "./types.ts";

/** Seconds a connection may stay open without a request in flight (Bun's own default is 10). */
const IDLE_S = 10;

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
          if (!newGroup) return void proc.kill(signal);
          // Once the leader is reaped its pid, and with it the group id, is
          // free for reuse as soon as the group is empty: signal the group
          // only while a process of it is left (Linux keeps a pgid in use
          // as long as any member lives).
          const reaped = proc.exitCode !== null || proc.signalCode !== null;
          if (reaped && !groupHasMembers(proc.pid)) return;
          // A negative pid signals the process group the child leads.
          process.kill(-proc.pid, signal);
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
      // A connection that sends no request (a port scan, an abandoned
      // keep-alive, a peer that never finishes its headers) is closed after
      // IDLE_S, so idle ones cannot pile up until file descriptors run out.
      idleTimeout: IDLE_S,
      async fetch(request, bunServer) {
        // A request in flight has no limit: a base backup, or a wal-push to
        // a slow store, sends nothing until WAL-E exits, and a cut
        // connection there is a failed archive. Bun 1.4 keeps a request's
        // timeout on its connection, so once answered it gets IDLE_S again.
        bunServer.timeout(request, 0);
        try {
          return await handler(request);
        } finally {
          bunServer.timeout(request, IDLE_S);
        }
      },
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
