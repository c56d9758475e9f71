/**
 * The part of PromQL the dashboard's panels use, parsed and evaluated over a
 * run's samples (scripts/dashboard/samples.ts), so that the README's picture
 * plots the panels' own queries. Anything else is a parse error: a panel
 * that needs more fails here instead of being drawn wrong.
 *
 * Grammar: numbers; selectors `name{label op "value"}` with = != =~ !~,
 * optionally `[30s]`; functions time(), rate(), increase(),
 * histogram_quantile(); sum, max, min, avg and count with `by`/`without`;
 * + - * / and the comparisons (filters, no `bool`) between scalars and
 * vectors, one-to-one on all labels; `and`, `or`, `unless`.
 * Evaluation follows Prometheus 2.x/3.x: a selector takes each series'
 * sample of the newest scrape at or before the step (a series missing
 * from that scrape is stale, as Prometheus marks it); rate() and increase()
 * extrapolate as Prometheus' extrapolatedRate does; histogram_quantile()
 * interpolates linearly within a bucket.
 */
import { parseSeries, type Samples, type Series } from "./samples.ts";

type Matcher = { label: string; op: "=" | "!=" | "=~" | "!~"; value: string };
export type Expr =
  | { kind: "number"; value: number }
  | { kind: "selector"; name: string; matchers: Matcher[]; range?: number }
  | { kind: "call"; fn: "time" | "rate" | "increase" | "histogram_quantile"; args: Expr[] }
  | { kind: "aggregate"; op: Aggregation; by?: string[]; without?: string[]; expr: Expr }
  | { kind: "binary"; op: BinaryOp; left: Expr; right: Expr };

type Aggregation = "sum" | "max" | "min" | "avg" | "count";
type BinaryOp = "+" | "-" | "*" | "/" | "==" | "!=" | ">" | "<" | ">=" | "<=" | "and" | "or" | "unless";

const AGGREGATIONS = ["sum", "max", "min", "avg", "count"];
const FUNCTIONS = ["time", "rate", "increase", "histogram_quantile"];
/** Lowest first, as PromQL binds them. */
const PRECEDENCE: BinaryOp[][] = [
  ["or"],
  ["and", "unless"],
  ["==", "!=", ">", "<", ">=", "<="],
  ["+", "-"],
  ["*", "/"],
];

const TOKEN =
  /\s*(?:(?<duration>\d+[smhdw](?![a-zA-Z0-9_]))|(?<number>\d+(?:\.\d+)?(?:e[+-]?\d+)?)|(?<string>"(?:[^"\\]|\\.)*")|(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)|(?<op>=~|!~|==|!=|>=|<=|[-+*/(){}[\],=<>]))/y;

function tokenize(text: string): string[] {
  const tokens: string[] = [];
  TOKEN.lastIndex = 0;
  while (TOKEN.lastIndex < text.length) {
    if (/^\s*$/.test(text.slice(TOKEN.lastIndex))) break;
    const at = TOKEN.lastIndex;
    const match = TOKEN.exec(text);
    if (!match) throw new Error(`cannot read ${JSON.stringify(text.slice(at, at + 20))} in ${JSON.stringify(text)}`);
    tokens.push(match[0].trim());
  }
  return tokens;
}

const SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };

export function parse(text: string): Expr {
  const tokens = tokenize(text);
  let at = 0;
  const peek = () => tokens[at];
  const next = () => {
    const token = tokens[at++];
    if (token === undefined) throw new Error(`${JSON.stringify(text)} ends too soon`);
    return token;
  };
  const expect = (token: string) => {
    const got = next();
    if (got !== token) throw new Error(`expected ${token}, got ${got} in ${JSON.stringify(text)}`);
  };
  const labels = () => {
    expect("(");
    const out: string[] = [];
    while (peek() !== ")") {
      out.push(next());
      if (peek() === ",") next();
    }
    expect(")");
    return out;
  };
  const grouping = (into: { by?: string[]; without?: string[] }) => {
    if (peek() === "by") {
      next();
      into.by = labels();
    } else if (peek() === "without") {
      next();
      into.without = labels();
    }
  };

  const binary = (level: number): Expr => {
    if (level === PRECEDENCE.length) return unary();
    let left = binary(level + 1);
    while (PRECEDENCE[level]?.includes(peek() as BinaryOp)) {
      const op = next() as BinaryOp;
      left = { kind: "binary", op, left, right: binary(level + 1) };
    }
    return left;
  };
  const unary = (): Expr => {
    if (peek() === "-") {
      next();
      return { kind: "binary", op: "*", left: { kind: "number", value: -1 }, right: unary() };
    }
    return primary();
  };
  const primary = (): Expr => {
    const token = next();
    if (token === "(") {
      const inner = binary(0);
      expect(")");
      return inner;
    }
    if (/^\d/.test(token)) return { kind: "number", value: Number(token) };
    if (!/^[a-zA-Z_:]/.test(token)) throw new Error(`unexpected ${token} in ${JSON.stringify(text)}`);
    if (AGGREGATIONS.includes(token)) {
      const node: { by?: string[]; without?: string[] } = {};
      grouping(node);
      expect("(");
      const expr = binary(0);
      expect(")");
      grouping(node);
      return { kind: "aggregate", op: token as Aggregation, ...node, expr };
    }
    if (peek() === "(") {
      if (!FUNCTIONS.includes(token)) throw new Error(`the function ${token}() is not supported`);
      next();
      const args: Expr[] = [];
      while (peek() !== ")") {
        args.push(binary(0));
        if (peek() === ",") next();
      }
      expect(")");
      return { kind: "call", fn: token as "time", args };
    }
    const matchers: Matcher[] = [];
    if (peek() === "{") {
      next();
      while (peek() !== "}") {
        const label = next();
        const op = next() as Matcher["op"];
        if (!["=", "!=", "=~", "!~"].includes(op)) throw new Error(`bad matcher ${label}${op}`);
        const value = JSON.parse(next()) as string;
        matchers.push({ label, op, value });
        if (peek() === ",") next();
      }
      expect("}");
    }
    let range: number | undefined;
    if (peek() === "[") {
      next();
      const duration = next();
      const m = /^(\d+)([smhdw])$/.exec(duration);
      if (!m) throw new Error(`bad range ${duration}`);
      range = Number(m[1]) * (SECONDS[m[2] as string] as number);
      expect("]");
    }
    return { kind: "selector", name: token, matchers, range };
  };

  const expr = binary(0);
  if (at !== tokens.length) throw new Error(`unexpected ${tokens[at]} in ${JSON.stringify(text)}`);
  return expr;
}

/** Every metric name a query selects. */
export function metricNames(expr: Expr): string[] {
  switch (expr.kind) {
    case "number":
      return [];
    case "selector":
      return [expr.name];
    case "call":
      return expr.args.flatMap(metricNames);
    case "aggregate":
      return metricNames(expr.expr);
    case "binary":
      return [...metricNames(expr.left), ...metricNames(expr.right)];
  }
}

/** Every label a query names, with the metrics it selects: in matchers and in by/without. */
export function labelUses(expr: Expr): { metric: string; label: string }[] {
  switch (expr.kind) {
    case "number":
      return [];
    case "selector":
      return expr.matchers.map((m) => ({ metric: expr.name, label: m.label }));
    case "call":
      return expr.args.flatMap(labelUses);
    case "aggregate": {
      const grouped = [...(expr.by ?? []), ...(expr.without ?? [])];
      return [
        ...labelUses(expr.expr),
        ...metricNames(expr.expr).flatMap((metric) => grouped.map((label) => ({ metric, label }))),
      ];
    }
    case "binary":
      return [...labelUses(expr.left), ...labelUses(expr.right)];
  }
}

/** Grafana's variables, as the picture fills them in: every instance, and a rate window. */
export function substitute(query: string, variables: Record<string, string>): string {
  return query.replace(/\$\{?(\w+)\}?/g, (whole, name: string) => variables[name] ?? whole);
}

// ------------------------------------------------------------ evaluation

export interface Element {
  labels: Record<string, string>;
  value: number;
}
type Value = { scalar: number } | { vector: Element[] };

/** The samples, indexed for evaluation. */
export class Run {
  private readonly parsed: Series[];
  constructor(private readonly samples: Samples) {
    this.parsed = samples.series.map(parseSeries);
  }
  get times(): number[] {
    return this.samples.scrapes.map((s) => s.t);
  }

  private matching(name: string, matchers: Matcher[]): number[] {
    const full = [...matchers, { label: "__name__", op: "=" as const, value: name }];
    return this.parsed.flatMap((series, i) => {
      const labels: Record<string, string> = { ...series.labels, __name__: series.name };
      const ok = full.every((m) => {
        const have = labels[m.label] ?? "";
        if (m.op === "=") return have === m.value;
        if (m.op === "!=") return have !== m.value;
        const re = new RegExp(`^(?:${m.value})$`);
        return m.op === "=~" ? re.test(have) : !re.test(have);
      });
      return ok ? [i] : [];
    });
  }

  /** The newest scrape at or before t. */
  private scrapeAt(t: number) {
    let found: Samples["scrapes"][number] | undefined;
    for (const s of this.samples.scrapes) if (s.t <= t) found = s;
    return found;
  }

  instant(name: string, matchers: Matcher[], t: number): Element[] {
    const scrape = this.scrapeAt(t);
    if (!scrape) return [];
    return this.matching(name, matchers).flatMap((i) => {
      const value = scrape.values[i];
      return value === null || value === undefined ? [] : [{ labels: this.labels(i), value }];
    });
  }

  range(name: string, matchers: Matcher[], t: number, seconds: number) {
    const window = this.samples.scrapes.filter((s) => s.t > t - seconds && s.t <= t);
    return this.matching(name, matchers).map((i) => ({
      labels: this.labels(i),
      points: window.flatMap((s) => {
        const v = s.values[i];
        return v === null || v === undefined ? [] : [{ t: s.t, v }];
      }),
    }));
  }

  private labels(i: number): Record<string, string> {
    const series = this.parsed[i] as Series;
    return { __name__: series.name, ...series.labels };
  }
}

const withoutName = ({ __name__: _, ...rest }: Record<string, string>) => rest;
const signature = (labels: Record<string, string>) =>
  JSON.stringify(Object.entries(withoutName(labels)).sort(([a], [b]) => a.localeCompare(b)));

/** Prometheus' extrapolatedRate: the increase over the window, extrapolated to its edges. */
function extrapolated(points: { t: number; v: number }[], t: number, seconds: number, isRate: boolean): number | null {
  if (points.length < 2) return null;
  const first = points[0] as { t: number; v: number };
  const last = points[points.length - 1] as { t: number; v: number };
  let result = last.v - first.v;
  for (let i = 1; i < points.length; i++) {
    const previous = (points[i - 1] as { v: number }).v;
    if ((points[i] as { v: number }).v < previous) result += previous; // a counter reset
  }
  const sampled = last.t - first.t;
  const average = sampled / (points.length - 1);
  let toStart = first.t - (t - seconds);
  let toEnd = t - last.t;
  if (toStart >= average * 1.1) toStart = average / 2;
  if (toEnd >= average * 1.1) toEnd = average / 2;
  if (result > 0 && first.v >= 0) toStart = Math.min(toStart, sampled * (first.v / result));
  result *= (sampled + toStart + toEnd) / sampled;
  return isRate ? result / seconds : result;
}

/** Prometheus' bucketQuantile over one series' buckets (upper bound, cumulative count). */
function bucketQuantile(q: number, buckets: { le: number; count: number }[]): number {
  buckets.sort((a, b) => a.le - b.le);
  const top = buckets[buckets.length - 1];
  if (buckets.length < 2 || top?.le !== Number.POSITIVE_INFINITY) return Number.NaN;
  const total = top.count;
  if (total === 0) return Number.NaN;
  const rank = q * total;
  const b = buckets.findIndex((bucket) => bucket.count >= rank);
  if (b === buckets.length - 1) return (buckets[b - 1] as { le: number }).le;
  const bucket = buckets[b] as { le: number; count: number };
  if (b === 0 && bucket.le <= 0) return bucket.le;
  const start = b === 0 ? 0 : (buckets[b - 1] as { le: number }).le;
  const below = b === 0 ? 0 : (buckets[b - 1] as { count: number }).count;
  return start + (bucket.le - start) * ((rank - below) / (bucket.count - below));
}

const arithmetic: Record<string, (a: number, b: number) => number> = {
  "+": (a, b) => a + b,
  "-": (a, b) => a - b,
  "*": (a, b) => a * b,
  "/": (a, b) => a / b,
};
const comparison: Record<string, (a: number, b: number) => boolean> = {
  "==": (a, b) => a === b,
  "!=": (a, b) => a !== b,
  ">": (a, b) => a > b,
  "<": (a, b) => a < b,
  ">=": (a, b) => a >= b,
  "<=": (a, b) => a <= b,
};

function binaryOp(op: BinaryOp, left: Value, right: Value): Value {
  if (op === "and" || op === "or" || op === "unless") {
    if (!("vector" in left) || !("vector" in right)) throw new Error(`${op} needs two vectors`);
    const rightSet = new Set(right.vector.map((e) => signature(e.labels)));
    if (op === "and") return { vector: left.vector.filter((e) => rightSet.has(signature(e.labels))) };
    if (op === "unless") return { vector: left.vector.filter((e) => !rightSet.has(signature(e.labels))) };
    const leftSet = new Set(left.vector.map((e) => signature(e.labels)));
    return { vector: [...left.vector, ...right.vector.filter((e) => !leftSet.has(signature(e.labels)))] };
  }
  const apply = (a: number, b: number) =>
    op in arithmetic ? (arithmetic[op] as (a: number, b: number) => number)(a, b) : a;
  const keep = (a: number, b: number) =>
    op in comparison ? (comparison[op] as (a: number, b: number) => boolean)(a, b) : true;
  const isComparison = op in comparison;
  if ("scalar" in left && "scalar" in right) {
    if (isComparison) throw new Error("a comparison of two scalars needs bool, which is not supported");
    return { scalar: apply(left.scalar, right.scalar) };
  }
  // A filter keeps the vector side's value and name; arithmetic drops the name.
  const element = (e: Element, value: number) => ({ labels: isComparison ? e.labels : withoutName(e.labels), value });
  if ("scalar" in right && "vector" in left)
    return {
      vector: left.vector
        .filter((e) => keep(e.value, right.scalar))
        .map((e) => element(e, isComparison ? e.value : apply(e.value, right.scalar))),
    };
  if ("scalar" in left && "vector" in right)
    return {
      vector: right.vector
        .filter((e) => keep(left.scalar, e.value))
        .map((e) => element(e, isComparison ? e.value : apply(left.scalar, e.value))),
    };
  if (!("vector" in left) || !("vector" in right)) throw new Error("unreachable");
  const rights = new Map(right.vector.map((e) => [signature(e.labels), e]));
  return {
    vector: left.vector.flatMap((e) => {
      const other = rights.get(signature(e.labels));
      if (!other || !keep(e.value, other.value)) return [];
      return [element(e, isComparison ? e.value : apply(e.value, other.value))];
    }),
  };
}

function aggregate(expr: Extract<Expr, { kind: "aggregate" }>, input: Element[]): Element[] {
  const groups = new Map<string, { labels: Record<string, string>; values: number[] }>();
  for (const e of input) {
    // Neither by nor without: one group of everything.
    const labels = expr.without
      ? Object.fromEntries(Object.entries(withoutName(e.labels)).filter(([l]) => !expr.without?.includes(l)))
      : Object.fromEntries((expr.by ?? []).filter((l) => l in e.labels).map((l) => [l, e.labels[l] as string]));
    const key = signature(labels);
    const group = groups.get(key) ?? { labels, values: [] };
    group.values.push(e.value);
    groups.set(key, group);
  }
  const fold = {
    sum: (v: number[]) => v.reduce((a, b) => a + b, 0),
    max: (v: number[]) => Math.max(...v),
    min: (v: number[]) => Math.min(...v),
    avg: (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length,
    count: (v: number[]) => v.length,
  }[expr.op];
  return [...groups.values()].map((g) => ({ labels: g.labels, value: fold(g.values) }));
}

export function evaluate(expr: Expr, run: Run, t: number): Value {
  switch (expr.kind) {
    case "number":
      return { scalar: expr.value };
    case "selector":
      if (expr.range !== undefined)
        throw new Error(`${expr.name}[...] is a range: only rate() and increase() take one`);
      return { vector: run.instant(expr.name, expr.matchers, t) };
    case "aggregate": {
      const inner = evaluate(expr.expr, run, t);
      if (!("vector" in inner)) throw new Error(`${expr.op} needs a vector`);
      return { vector: aggregate(expr, inner.vector) };
    }
    case "binary":
      return binaryOp(expr.op, evaluate(expr.left, run, t), evaluate(expr.right, run, t));
    case "call": {
      if (expr.fn === "time") return { scalar: t };
      if (expr.fn === "histogram_quantile") {
        const [q, inner] = expr.args.map((a) => evaluate(a, run, t));
        if (!q || !("scalar" in q) || !inner || !("vector" in inner))
          throw new Error("histogram_quantile(scalar, vector)");
        const series = new Map<string, { labels: Record<string, string>; buckets: { le: number; count: number }[] }>();
        for (const e of inner.vector) {
          const { le, ...labels } = withoutName(e.labels);
          if (le === undefined) continue;
          const key = signature(labels);
          const entry = series.get(key) ?? { labels, buckets: [] };
          entry.buckets.push({ le: le === "+Inf" ? Number.POSITIVE_INFINITY : Number(le), count: e.value });
          series.set(key, entry);
        }
        return {
          vector: [...series.values()].map((s) => ({ labels: s.labels, value: bucketQuantile(q.scalar, s.buckets) })),
        };
      }
      const [arg] = expr.args;
      if (arg?.kind !== "selector" || arg.range === undefined) throw new Error(`${expr.fn}() takes a range selector`);
      const range = arg.range;
      return {
        vector: run.range(arg.name, arg.matchers, t, range).flatMap((s) => {
          const value = extrapolated(s.points, t, range, expr.fn === "rate");
          return value === null ? [] : [{ labels: withoutName(s.labels), value }];
        }),
      };
    }
  }
}
