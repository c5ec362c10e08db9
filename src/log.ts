// The logger: one consola instance, a tagged child per module, text or JSON lines, to standard
// error or to a file that can be reopened (SIGHUP, after logrotate moved it). Every text line opens
// with its UTC time and level; control characters are escaped, whoever wrote the message (a
// client, an upstream, an archive). Lines with fields (access, audit) go past consola's parsing.
import { closeSync, openSync, writeSync } from "node:fs";
import { createConsola, type ConsolaInstance, type ConsolaReporter, type LogObject } from "consola";
import type { LogLevel } from "./config/schema.ts";

const LEVELS: Record<LogLevel, number> = { error: 0, warn: 1, info: 3, debug: 4, trace: 5 };

export type Logger = ConsolaInstance;

/**
 * C0 and C1 control characters (ESC, CSI, BEL, newlines, ...) and the invisible bidirectional
 * overrides that reorder what a terminal shows. A backslash is left alone: messages quote
 * JSON strings, which would read worse doubled.
 */
const UNSAFE = /[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
const NAMED: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

/** `s` with every unsafe character shown as an escape (`\x1b`, `\n`, `\u202e`): safe on a terminal, one line. */
export function escapeText(s: string): string {
  return s.replace(UNSAFE, (c) => {
    const code = c.charCodeAt(0);
    return NAMED[c] ?? (code < 0x100 ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16).padStart(4, "0")}`);
  });
}

/** Characters JSON.stringify leaves raw that a terminal may act on (C1 controls, bidi overrides). */
const JSON_UNSAFE = /[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** JSON text with those characters as `\uXXXX` escapes: the same JSON value, safe to `tail` on a terminal. */
export function jsonText(value: unknown, space?: number): string {
  return JSON.stringify(value, null, space).replace(JSON_UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** A message of several lines on purpose (the start-up banner): each line is escaped, the breaks kept. */
export class LogLines {
  constructor(readonly lines: readonly string[]) {}
}

/** An error's message, then its stack frames on their own lines (escaped each). */
function errorText(err: Error): string {
  const frames = (err.stack ?? "").split("\n").filter((l) => /^\s+at /.test(l)).map((l) => `    ${escapeText(l.trim())}`);
  return [escapeText(err.message), ...frames].join("\n");
}

/** One message of the arguments of a log call, as text safe for a terminal or a log file. */
function safeText(args: unknown[]): string {
  return args
    .map((a) => (a instanceof LogLines ? a.lines.map(escapeText).join("\n") : typeof a === "string" ? escapeText(a) : a instanceof Error ? errorText(a) : escapeText(Bun.inspect(a))))
    .join(" ");
}

/** The message of a log call as JSON carries it: the exact strings (jsonText escapes them). */
function jsonMessage(args: unknown[]): string {
  return args.map((a) => (typeof a === "string" ? a : a instanceof LogLines ? a.lines.join("\n") : a instanceof Error ? a.message : JSON.stringify(a))).join(" ");
}

/** Level names of consola's log types: the five of the config, whatever method wrote the line. */
const LEVEL_OF: Record<string, LogLevel> = {
  fatal: "error", error: "error", fail: "error", warn: "warn", debug: "debug", trace: "trace", verbose: "trace",
};
const levelOf = (type: string): LogLevel => LEVEL_OF[type] ?? "info";
/** The text line's level column: upper case, one width, so messages line up. */
const LABEL: Record<LogLevel, string> = { error: "ERROR", warn: "WARN ", info: "INFO ", debug: "DEBUG", trace: "TRACE" };

/** Structured values of a line: the access and audit lines' fields. Undefined ones are left out. */
export type Fields = Record<string, string | number | boolean | null | undefined>;

/** A field value as `key=value` text shows it: bare when it holds no space, quote or `=`; else quoted; null as `-`. Always escaped. */
export function fieldText(value: string | number | boolean | null): string {
  if (value === null) return "-";
  if (typeof value !== "string") return String(value);
  if (value !== "" && !/[\s"=\\]/.test(value)) return escapeText(value);
  return `"${escapeText(value.replace(/[\\"]/g, (c) => `\\${c}`))}"`;
}

/** Where lines go: standard error, or a file that can be reopened. */
export interface LogSink {
  write(chunk: string): void;
  reopen(): void;
}

/** A sink that writes whole lines to a file descriptor, reopening the file on demand. */
function fileSink(path: string): LogSink {
  let fd = openSync(path, "a", 0o640);
  return {
    write(chunk: string) {
      writeSync(fd, chunk);
    },
    reopen() {
      const next = openSync(path, "a", 0o640);
      const old = fd;
      fd = next;
      closeSync(old);
    },
  };
}

const stderrSink: LogSink = { write: (chunk) => void process.stderr.write(chunk), reopen() {} };

/**
 * Turns log records into lines, text or JSON, and writes them. It is consola's only reporter, and
 * the direct path for lines with fields (one per request: no argument parsing, no throttling).
 */
export class LineWriter implements ConsolaReporter {
  /** `level` is read on every check: the logger's level may change while it runs. */
  constructor(readonly format: "text" | "json", readonly sink: LogSink, private readonly level: () => number) {}

  log(obj: LogObject): void {
    const level = levelOf(obj.type);
    if (this.format === "json") {
      this.sink.write(jsonText({ time: obj.date.toISOString(), level, tag: obj.tag || undefined, msg: jsonMessage(obj.args) }) + "\n");
      return;
    }
    // Each line of a message (a banner, an error's stack) is a log line of its own, with time and level.
    const prefix = `${obj.date.toISOString()} ${LABEL[level]} ${obj.tag ? `[${escapeText(obj.tag)}] ` : ""}`;
    let out = "";
    for (const line of safeText(obj.args).split("\n")) if (line.trim()) out += prefix + line + "\n";
    if (out) this.sink.write(out);
  }

  /** Whether a line at `level` is written at all. */
  enabled(level: LogLevel): boolean {
    return LEVELS[level] <= this.level();
  }

  /**
   * A line with fields. Text shows the fields as `key=value` pairs (the summary is for JSON, where
   * it is `msg`); JSON carries each field beside `time`, `level`, `tag` and `msg`.
   */
  fields(level: LogLevel, tag: string, summary: string, fields: Fields): void {
    if (!this.enabled(level)) return;
    const time = new Date().toISOString();
    if (this.format === "json") {
      this.sink.write(jsonText({ time, level, tag, msg: summary, ...fields }) + "\n");
      return;
    }
    let line = `${time} ${LABEL[level]} [${tag}]`;
    for (const key in fields) {
      const v = fields[key];
      if (v !== undefined) line += ` ${key}=${fieldText(v)}`;
    }
    this.sink.write(line + "\n");
  }
}

/** The writer behind a logger made by createLogger; null for any other (tests' own loggers). */
export function lineWriter(log: Logger): LineWriter | null {
  return (log.options.reporters.find((r) => r instanceof LineWriter) as LineWriter | undefined) ?? null;
}

/** A line with fields through `log`: its writer when it has one, else a plain message of `key=value` pairs. */
export function logFields(log: Logger, level: LogLevel, tag: string, summary: string, fields: Fields): void {
  const w = lineWriter(log);
  if (w) return w.fields(level, tag, summary, fields);
  const text = Object.entries(fields).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${fieldText(v!)}`).join(" ");
  log.withTag(tag)[level](text);
}

export interface LogOptions {
  level: LogLevel;
  format: "text" | "json";
  /** Append to this file instead of writing to standard error. */
  file?: string;
}

/**
 * Sets the level of a logger and of every logger derived from it (withTag copies the level when
 * it is called, so the children are tracked): a config reload changes the level everywhere.
 */
function levelControl(root: Logger): (level: LogLevel) => void {
  const all = new Set<WeakRef<Logger>>([new WeakRef(root)]);
  const sweep = () => {
    for (const r of all) if (!r.deref()) all.delete(r);
  };
  const watch = (l: Logger) => {
    const create = l.create.bind(l);
    l.create = (o) => {
      const child = create(o);
      watch(child);
      all.add(new WeakRef(child));
      if (all.size % 1024 === 0) sweep();
      return child;
    };
  };
  watch(root);
  return (level) => {
    sweep();
    for (const r of all) r.deref()!.level = LEVELS[level];
  };
}

/** The logger, `reopen` for the log file (a no-op without one), and `setLevel` (a config reload). */
export function createLogger(opts: LogOptions): { log: Logger; reopen: () => void; setLevel: (level: LogLevel) => void } {
  const sink = opts.file ? fileSink(opts.file) : stderrSink;
  const writer: LineWriter = new LineWriter(opts.format, sink, () => log.level);
  const log = createConsola({ level: LEVELS[opts.level], reporters: [writer] });
  return { log, reopen: () => sink.reopen(), setLevel: levelControl(log) };
}
