/**
 * Everything runtime-specific, behind one interface: starting processes,
 * listening for HTTP, signals and the process itself. The Bun module
 * implements it; the rest of the code only sees this file.
 */

export type Signal = "SIGINT" | "SIGTERM" | "SIGKILL";

export interface SpawnOptions {
  env: Record<string, string>;
  /** "pipe" captures the stream; "inherit" passes ours through. */
  stdio: "pipe" | "inherit";
  /** With stdio "pipe": a pipe to the child's stdin (Child.stdin). Without, its stdin is /dev/null. */
  input?: boolean;
  /**
   * Start the child as the leader of a new process group, so that kill()
   * reaches everything it starts (WAL-E runs lzop, pv, psql and prefetchers).
   */
  newGroup?: boolean;
}

export interface Child {
  readonly pid: number;
  /** Resolves with the exit code; a child killed by a signal gives 128 + its number. */
  readonly exited: Promise<number>;
  /** Present when spawned with `input`. Closing it gives the child end-of-file. */
  readonly stdin: WritableStream<Uint8Array> | null;
  /** Present when spawned with stdio "pipe". */
  readonly stdout: ReadableStream<Uint8Array> | null;
  readonly stderr: ReadableStream<Uint8Array> | null;
  /** Signals the child, or its whole process group when it leads one. Never throws. */
  kill(signal: Signal): void;
}

export interface Server {
  readonly port: number;
  /** Stops listening and closes every connection; call it once requests in flight are answered. */
  stop(): Promise<void>;
}

export interface Runtime {
  readonly name: string;
  /** argv[0] is looked up on PATH. Never a shell. */
  spawn(argv: string[], options: SpawnOptions): Child;
  serve(
    handler: (request: Request) => Response | Promise<Response>,
    listen: { hostname: string; port: number },
  ): Server;
  onSignal(signal: "SIGINT" | "SIGTERM", listener: () => void): void;
  env(): Record<string, string | undefined>;
  /** The command-line arguments after the program itself. */
  args(): string[];
  exit(code: number): never;
  stdout(text: string): void;
  stderr(text: string): void;
}
