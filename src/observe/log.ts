/**
 * Structured logs: one JSON object a line on stdout. Every value of every
 * line and every response body passes through the redactor before it is
 * serialised, so a secret from the environment never leaves the process,
 * even when WAL-E prints it.
 */

export type Fields = Record<string, unknown>;

export interface Logger {
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
}

export type Redact = (text: string) => string;

/** Replaces each secret value with "[REDACTED]". Longest first, so a secret that contains another is caught whole. */
export function redactor(secrets: string[]): Redact {
  const values = [...new Set(secrets)].filter((s) => s.length > 0).sort((a, b) => b.length - a.length);
  if (values.length === 0) return (text) => text;
  return (text) => values.reduce((out, secret) => out.split(secret).join("[REDACTED]"), text);
}

/**
 * JSON with every string value redacted before it is serialised. Redacting
 * the JSON text instead misses a secret that holds `"`, `\` or a control
 * character: serialised, it is escaped and no longer matches.
 */
export function redactedJson(value: unknown, redact: Redact, space?: number): string {
  return JSON.stringify(value, (_, v) => (typeof v === "string" ? redact(v) : v), space);
}

/** JSON lines by default; "text" gives `time level msg key=value ...` for humans. */
export function createLogger(write: (line: string) => void, redact: Redact, format: "json" | "text" = "json"): Logger {
  const line =
    (level: string) =>
    (msg: string, fields: Fields = {}) => {
      const time = new Date().toISOString();
      if (format === "json") {
        write(`${redactedJson({ time, level, msg, ...fields }, redact)}\n`);
        return;
      }
      const pairs = Object.entries(fields)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => {
          const value = typeof v === "string" ? redact(v) : v;
          return `${k}=${typeof value === "string" && !/[\s"=]/.test(value) ? value : redactedJson(value, redact)}`;
        });
      write(`${[time, level.toUpperCase().padEnd(5), redact(msg), ...pairs].join(" ")}\n`);
    };
  return { info: line("info"), warn: line("warn"), error: line("error") };
}
