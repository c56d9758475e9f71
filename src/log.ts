/**
 * Structured logs: one JSON object a line on stdout. Every line and every
 * response body passes through the redactor, so a secret from the
 * environment never leaves the process, even when WAL-E prints it.
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

/** JSON lines by default; "text" gives `time level msg key=value ...` for humans. */
export function createLogger(write: (line: string) => void, redact: Redact, format: "json" | "text" = "json"): Logger {
  const line =
    (level: string) =>
    (msg: string, fields: Fields = {}) => {
      const time = new Date().toISOString();
      if (format === "json") {
        write(
          `${JSON.stringify({ time, level, msg, ...fields }, (_, v) => (typeof v === "string" ? redact(v) : v))}\n`,
        );
        return;
      }
      const pairs = Object.entries(fields)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => `${k}=${typeof v === "string" && !/[\s"=]/.test(v) ? v : JSON.stringify(v)}`);
      write(`${redact([time, level.toUpperCase().padEnd(5), msg, ...pairs].join(" "))}\n`);
    };
  return { info: line("info"), warn: line("warn"), error: line("error") };
}
