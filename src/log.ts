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

export function createLogger(write: (line: string) => void, redact: Redact): Logger {
  const line = (level: string) => (msg: string, fields: Fields = {}) =>
    write(`${JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields }, (_, v) => (typeof v === "string" ? redact(v) : v))}\n`);
  return { info: line("info"), warn: line("warn"), error: line("error") };
}
