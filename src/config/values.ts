// The configuration's value types as valibot schemas: each checks one value, turns it into what
// the program uses (a duration into milliseconds) and says what is wrong in the words users see
// (`port: must be a port number 0-65535, got 70000`); the JSON Schema comes from the same pieces.
import { readFileSync } from "node:fs";
import * as v from "valibot";
import { isHost } from "../oci/names.ts";
import { imagePatternProblem } from "../oci/pattern.ts";
import { ConfigError } from "./error.ts";
import { parseDuration } from "./duration.ts";

export type Raw = Record<string, unknown>;
type Issue = v.BaseIssue<unknown>;
/** A message naming the value that was given. */
const got = (problem: string) => (issue: Issue) => `${problem}, got ${JSON.stringify(issue.input)}`;

export function isObject(v: unknown): v is Raw {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** Documentation of a key: the table's default column, and the flag that mirrors it. */
export interface KeyDoc {
  /** The default as the table shows it, when it is not the schema's default value. */
  default?: string;
  /** `--flag` of the commands in this group that sets the key; `sets`: the section field it sets. */
  flag?: { group: FlagGroup; hint: string; help?: string; sets?: string };
}
export type FlagGroup = "global" | "upstream" | "serve" | "archives";

/** A key with its description (the table's meaning column and the JSON Schema's description). */
export function doc<S extends v.GenericSchema>(schema: S, description: string, meta: KeyDoc = {}): S {
  const notes = [v.description(description), v.metadata(meta as Record<string, unknown>)] as const;
  const pipe = (schema as { pipe?: unknown[] }).pipe;
  // The notes go right after the root schema: the JSON Schema converter stops at the first transformation.
  return (pipe ? { ...schema, pipe: [pipe[0], ...notes, ...pipe.slice(1)] } : v.pipe(schema, ...notes)) as S;
}

export const str = (message = "must be a non-empty string") => v.pipe(v.string(message), v.minLength(1, message));

/** true/false, or the strings "true"/"false" (from a flag or `--set`). */
export const bool = () => v.pipe(
  v.union([v.boolean(), v.picklist(["true", "false"])], "must be true or false"),
  v.transform((b): boolean => b === true || b === "true"),
);

export const oneOf = <const T extends readonly string[]>(values: T, message: v.ErrorMessage<Issue>) => v.picklist(values, message);

const PORT = "must be a port number 0-65535";
/** A port number, or a string of digits (from a flag). */
export const port = () => v.pipe(
  v.union([v.pipe(v.number(got(PORT)), v.integer(got(PORT)), v.minValue(0, got(PORT)), v.maxValue(65535, got(PORT))),
    v.pipe(v.string(got(PORT)), v.regex(/^\d{1,5}$/, got(PORT)))], got(PORT)),
  v.transform(Number), v.maxValue(65535, got(PORT)),
);

/** A whole number in [min, max]. */
export const whole = (min: number, max: number, message: string) =>
  v.pipe(v.number(message), v.integer(message), v.minValue(min, message), v.maxValue(max, message));

const DURATION = "must be a duration like 30s, 5m or 1h";
const DURATION_RE = /^\s*\d+(\.\d+)?(ms|s|m|h|d|w)?\s*$/;
/** `500ms`, `30s`, `5m`, `12h`, `30d`, `2w` or a number of seconds → milliseconds. */
export const duration = (atLeast?: { ms: number; text: string }) => v.pipe(
  v.union([v.pipe(v.number(got(DURATION)), v.minValue(0, got(DURATION))), v.pipe(v.string(got(DURATION)), v.regex(DURATION_RE, got(DURATION)))], got(DURATION)),
  v.transform((d) => parseDuration(d)!),
  v.minValue(atLeast?.ms ?? 0, `must be at least ${atLeast?.text}`),
);

const MILLIS = "must be a positive number of milliseconds or a duration like 30s";
/** The seed's `pullTimeout`: a bare number is milliseconds; a duration is also accepted. */
export const millis = () => v.pipe(
  v.union([v.pipe(v.number(got(MILLIS)), v.gtValue(0, got(MILLIS))), v.pipe(v.string(got(MILLIS)), v.regex(DURATION_RE, got(MILLIS)))], got(MILLIS)),
  v.transform((d) => (typeof d === "number" || /^\d+$/.test(d) ? Number(d) : parseDuration(d)!)),
  v.gtValue(0, got(MILLIS)),
);

const RATE = "must be a rate like 1KiB/s, 500B/s or 0 (off)";
const RATE_RE = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)(?:\/s)?\s*$/;
const RATE_UNITS: Record<string, number> = { "": 1, b: 1, kb: 1000, kib: 1024, mb: 1000 ** 2, mib: 1024 ** 2 };
/** Bytes per second from `1KiB/s`, `500B/s`, `2MB/s` or a bare number; 0 turns the check off. */
export const rate = () => v.pipe(
  v.union([v.pipe(v.number(got(RATE)), v.minValue(0, got(RATE))), v.pipe(v.string(got(RATE)), v.regex(RATE_RE, got(RATE)))], got(RATE)),
  v.rawTransform(({ dataset, addIssue, NEVER }) => {
    const d = dataset.value;
    const m = typeof d === "number" ? null : RATE_RE.exec(d);
    const unit = m ? RATE_UNITS[m[2]!.toLowerCase()] : 1;
    if (unit === undefined) {
      addIssue({ message: got(RATE)({ input: d } as Issue) });
      return NEVER;
    }
    return Math.floor((m ? Number(m[1]) : (d as number)) * unit);
  }),
);

const SIZE = "must be a size like 500MiB, 20GiB, 1TiB, a number of bytes, or a percentage like 80%";
const SIZE_RE = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z%]*)\s*$/;
const SIZE_UNITS: Record<string, number> = {
  "": 1, b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, tib: 1024 ** 4,
  k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4,
};
/** A store bound: bytes, or a percentage (0–100) of the filesystem the store lives on. */
export type SizeBound = { bytes: number } | { percent: number };
/** `500MiB`, `20GiB`, `1TiB`, `1.5TB`, a bare number of bytes, or `80%`. */
export const size = () => v.pipe(
  v.union([v.pipe(v.number(got(SIZE)), v.minValue(0, got(SIZE))), v.pipe(v.string(got(SIZE)), v.regex(SIZE_RE, got(SIZE)))], got(SIZE)),
  v.rawTransform(({ dataset, addIssue, NEVER }): SizeBound => {
    const d = dataset.value;
    if (typeof d === "number") return { bytes: Math.floor(d) };
    const m = SIZE_RE.exec(d)!;
    const n = Number(m[1]);
    if (m[2] === "%") {
      if (n > 0 && n <= 100) return { percent: n };
      addIssue({ message: `a percentage must be above 0 and at most 100, got ${JSON.stringify(d)}` });
      return NEVER;
    }
    const unit = SIZE_UNITS[m[2]!.toLowerCase()];
    if (unit === undefined) {
      addIssue({ message: got(SIZE)({ input: d } as Issue) });
      return NEVER;
    }
    return { bytes: Math.floor(n * unit) };
  }),
);

/** An image pattern (`registry.k8s.io/pause:*`), see oci/pattern.ts. */
export const imagePattern = () => v.pipe(str(), v.rawCheck(({ dataset, addIssue }) => {
  const problem = dataset.typed ? imagePatternProblem(dataset.value) : null;
  if (problem) addIssue({ message: problem });
}));

/** A registry host or host:port. */
export const host = (what = "must be a host or host:port") => v.pipe(str(), v.check(isHost, got(what)));

/** A regular expression, checked to compile. */
export const pattern = () => v.pipe(str(), v.rawCheck(({ dataset, addIssue }) => {
  if (!dataset.typed) return;
  try {
    new RegExp(dataset.value);
  } catch (err) {
    addIssue({ message: `not a regular expression: ${(err as Error).message}` });
  }
}));

/** An http(s) URL. */
export const httpUrl = (problem = "must be an http:// or https:// URL") => v.pipe(str(), v.check((u) => {
  try {
    return ["http:", "https:"].includes(new URL(u).protocol);
  } catch {
    return false;
  }
}, got(problem)));

/** A mapping whose unknown keys are errors (`archives.watch: unknown key`) and whose missing keys get their own value's message. */
export function mapping<E extends v.ObjectEntries>(entries: E, what: string) {
  return v.strictObject(entries, (issue) => {
    const key = issue.path?.at(-1)?.key;
    if (issue.expected === "never") return "unknown key";
    if (typeof key === "string" && key in entries && issue.input === undefined) {
      const m = (entries[key] as { message?: v.ErrorMessage<Issue> }).message;
      return typeof m === "function" ? m(issue) : m ?? what;
    }
    return what;
  });
}

/** A rule over a whole mapping that names one of its keys ("" for the mapping itself). */
export function crossCheck<T extends Raw>(rule: (value: T) => { key: string; problem: string } | undefined) {
  return v.rawCheck<T>(({ dataset, addIssue }) => {
    const value = dataset.value as T;
    const bad = dataset.typed ? rule(value) : undefined;
    if (!bad) return;
    const at: v.ObjectPathItem = { type: "object", origin: "value", input: value, key: bad.key, value: value[bad.key] };
    addIssue({ message: bad.problem, path: bad.key ? [at] : undefined });
  });
}

export function readFileText(p: string, key: string): string {
  try {
    return readFileSync(p, "utf8");
  } catch (err) {
    throw new ConfigError(key, `cannot read ${p}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** A regular expression from a flag or key; a ConfigError naming it when it does not compile. */
export function compilePattern(p: string, key: string): RegExp {
  try {
    return new RegExp(p);
  } catch (err) {
    throw new ConfigError(key, `not a regular expression: ${(err as Error).message}`);
  }
}
