/**
 * What every benchmark section hands the runner: named figures, each the
 * median over repeats, with the target it is held to when there is one.
 */

export interface Figure {
  name: string;
  value: number;
  unit: string;
  /** The target in words, e.g. "<= 1 ms". */
  target?: string;
  met?: boolean;
}

export interface Section {
  title: string;
  /** The runner's name for it (bench/run.ts), and when it was measured. */
  id?: string;
  ranAt?: string;
  figures: Figure[];
  /** How it was measured, and why a missed target cannot be met. */
  notes: string[];
}

export function median(values: number[]): number {
  if (values.length === 0) throw new Error("median of nothing");
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** The nearest-rank percentile, as wrk reports it. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) throw new Error("percentile of nothing");
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}

/** A figure held to a limit: `value <op> limit`. */
export function targeted(name: string, value: number, unit: string, op: "<=" | "<" | ">=", limit: number): Figure {
  const met = op === "<=" ? value <= limit : op === "<" ? value < limit : value >= limit;
  return { name, value, unit, target: `${op} ${limit} ${unit}`.trim(), met };
}

export const round = (value: number, digits = 3) => Number(value.toFixed(digits));
