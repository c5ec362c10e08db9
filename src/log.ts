// The logger: our own (consola cost ~12 MiB of RSS at start), a tagged child per module, text or
// JSON lines, to standard error or to a file that can be reopened (SIGHUP, after logrotate moved
// it). Every text line opens with its UTC time and level; control characters are escaped, whoever
// wrote the message (a client, an upstream, an archive). Lines with fields (access, audit) are
// written directly, without a message's parsing and throttling.
import { closeSync, openSync, writeSync } from "node:fs";
import type { LogLevel } from "./config/schema.ts";

/** Numeric levels (consola's numbers, which `Logger.level` keeps): a line is written when its level <= the logger's. */
const LEVELS: Record<LogLevel, number> = { error: 0, warn: 1, info: 3, debug: 4, trace: 5 };

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

/** The text line's level column: upper case, one width, so messages line up. */
const LABEL: Record<LogLevel, string> = { error: "ERROR", warn: "WARN ", info: "INFO ", debug: "DEBUG", trace: "TRACE" };

/** Structured values of a line: the access and audit lines' fields. Undefined ones are left out. */
export type Fields = Record<string, string | number | boolean | null | undefined>;

/** Printable ASCII but space, `"`, `=` and `\`. */
const PLAIN = /^[!#-<>-[\]-~]+$/;

/** The time of the last line with fields: many lines share a millisecond under load. */
let lastTime = { ms: -1, text: "" };

/** The current time as an ISO-8601 UTC string with milliseconds, made once per millisecond. */
function nowText(): string {
  const ms = Date.now();
  if (ms !== lastTime.ms) lastTime = { ms, text: new Date(ms).toISOString() };
  return lastTime.text;
}

/** A field value as `key=value` text shows it: bare when it holds no space, quote or `=`; else quoted; null as `-`. Always escaped. */
export function fieldText(value: string | number | boolean | null): string {
  if (value === null) return "-";
  if (typeof value !== "string") return String(value);
  // Most values (ids, methods, paths, hosts) are printable ASCII without space, quote, `=` or `\`: as they are.
  if (PLAIN.test(value)) return value;
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

/**
 * Standard error, written to fd 2 directly: process.stderr costs ~6 MiB of RSS (node:tty, streams).
 * A non-blocking pipe that is full (EAGAIN) hands the rest, and every later line, to process.stderr,
 * which queues them in order.
 */
function stderrSink(): LogSink {
  let stream = false;
  return {
    write(chunk) {
      if (stream) return void process.stderr.write(chunk);
      const buf = Buffer.from(chunk);
      let off = 0;
      try {
        while (off < buf.length) off += writeSync(2, buf, off);
      } catch (err) {
        // A closed standard error (EPIPE) has nowhere to report to: the line is dropped, the caller goes on.
        if ((err as NodeJS.ErrnoException).code !== "EAGAIN") return;
        stream = true;
        process.stderr.write(buf.subarray(off));
      }
    },
    reopen() {},
  };
}

/** What a log call leaves: its level, tag, time and arguments. */
interface Entry {
  level: LogLevel;
  tag: string;
  date: Date;
  args: unknown[];
}

/** Batched lines (access lines) wait at most this long, and at most this many characters, before one write. */
const BATCH_MS = 20;
const BATCH_CHARS = 64 * 1024;

/** Writers holding batched lines: the process's exit writes them, however it ends (exit, a signal's handler, a crash). */
const holding = new Set<LineWriter>();
process.once("exit", () => {
  for (const w of holding) w.flush();
});

/**
 * Turns log calls into lines, text or JSON, and writes them; also the direct path for lines with
 * fields. Lines written with `batch` (one per request: the access log) are gathered and written
 * together: one system call per request halved warm-manifest throughput. Any other line flushes
 * them first, so the log keeps its order; so do reopen and the process's exit.
 */
export class LineWriter {
  private pending = "";
  private timer: ReturnType<typeof setTimeout> | undefined;

  /** `level` is read on every check: the logger's level may change while it runs. */
  constructor(readonly format: "text" | "json", readonly sink: LogSink, private readonly level: () => number) {}

  /** Writes the gathered batched lines now. */
  flush(): void {
    if (this.timer !== undefined) clearTimeout(this.timer), (this.timer = undefined);
    holding.delete(this);
    if (this.pending === "") return;
    const out = this.pending;
    this.pending = "";
    this.sink.write(out);
  }

  /** A line now, after whatever batched lines came before it. */
  private write(chunk: string): void {
    if (this.pending !== "") this.flush();
    this.sink.write(chunk);
  }

  /** A batched line: written with the others within BATCH_MS, or at once past BATCH_CHARS. */
  private gather(chunk: string): void {
    this.pending += chunk;
    if (this.pending.length >= BATCH_CHARS) return this.flush();
    if (this.timer === undefined) {
      this.timer = setTimeout(() => this.flush(), BATCH_MS);
      // The timer alone does not keep the process alive: the exit handler writes what is left.
      this.timer.unref?.();
      holding.add(this);
    }
  }

  /** The lines of one log call, ready to write ("" when there is nothing to show). */
  render(e: Entry): string {
    if (this.format === "json") return jsonText({ time: e.date.toISOString(), level: e.level, tag: e.tag || undefined, msg: jsonMessage(e.args) }) + "\n";
    // Each line of a message (a banner, an error's stack) is a log line of its own, with time and level.
    const prefix = `${e.date.toISOString()} ${LABEL[e.level]} ${e.tag ? `[${escapeText(e.tag)}] ` : ""}`;
    let out = "";
    for (const line of safeText(e.args).split("\n")) if (line.trim()) out += prefix + line + "\n";
    return out;
  }

  log(e: Entry): void {
    const out = this.render(e);
    if (out) this.write(out);
  }

  /** Whether a line at `level` is written at all. */
  enabled(level: LogLevel): boolean {
    return LEVELS[level] <= this.level();
  }

  /**
   * A line with fields. Text shows the fields as `key=value` pairs (the summary is for JSON, where
   * it is `msg`); JSON carries each field beside `time`, `level`, `tag` and `msg`. With `batch`,
   * the line is gathered with others of its kind (see the class).
   */
  fields(level: LogLevel, tag: string, summary: string, fields: Fields, batch = false): void {
    if (!this.enabled(level)) return;
    const time = nowText();
    const out = batch ? (c: string) => this.gather(c) : (c: string) => this.write(c);
    if (this.format === "json") return out(jsonText({ time, level, tag, msg: summary, ...fields }) + "\n");
    let line = `${time} ${LABEL[level]} [${tag}]`;
    for (const key in fields) {
      const v = fields[key];
      if (v !== undefined) line += ` ${key}=${fieldText(v)}`;
    }
    out(line + "\n");
  }
}

/** The writer behind a logger. */
export function lineWriter(log: Logger): LineWriter | null {
  return log.writer;
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

/** Identical messages of one logger within this time, past THROTTLE_MIN of them, are counted, not written. */
const THROTTLE_MS = 1000;
const THROTTLE_MIN = 5;

/** The loggers of one createLogger: the writer, and every logger made (weakly), for setLevel. */
interface Family {
  writer: LineWriter;
  all: Set<WeakRef<Logger>>;
}

/**
 * A logger with an optional tag (`withTag` nests them as `a:b`) and a level of its own, set by
 * setLevel for the whole family. A flood of one identical message is throttled as consola did: the
 * sixth and later copies within a second of each other are held, and written once as "(repeated N times)".
 */
export class Logger {
  private last = { key: "", time: -Infinity, count: 0, entry: null as Entry | null, timer: undefined as ReturnType<typeof setTimeout> | undefined };

  constructor(private readonly family: Family, readonly tag: string, public level: number) {}

  get writer(): LineWriter {
    return this.family.writer;
  }

  /** A child logger whose lines carry `tag` (after this one's, as `parent:tag`). */
  withTag(tag: string): Logger {
    const child = new Logger(this.family, this.tag ? `${this.tag}:${tag}` : tag, this.level);
    const all = this.family.all;
    all.add(new WeakRef(child));
    if (all.size % 1024 === 0) for (const r of all) if (!r.deref()) all.delete(r);
    return child;
  }

  error(...args: unknown[]): void {
    this.write("error", args);
  }
  warn(...args: unknown[]): void {
    this.write("warn", args);
  }
  info(...args: unknown[]): void {
    this.write("info", args);
  }
  debug(...args: unknown[]): void {
    this.write("debug", args);
  }
  trace(...args: unknown[]): void {
    this.write("trace", args);
  }

  private write(level: LogLevel, args: unknown[]): void {
    if (LEVELS[level] > this.level) return;
    const entry: Entry = { level, tag: this.tag, date: new Date(), args };
    const last = this.last;
    clearTimeout(last.timer);
    const now = entry.date.getTime();
    const within = now - last.time < THROTTLE_MS;
    last.time = now;
    let key = "";
    try {
      key = `${level}\0${this.tag}\0${jsonText(args.map((a) => (a instanceof Error ? a.message : a instanceof LogLines ? a.lines : a)))}`;
    } catch {
      // Not serializable (a cycle): never counted as a repeat.
    }
    if (within && key !== "" && key === last.key) {
      if (++last.count > THROTTLE_MIN) {
        last.timer = setTimeout(() => this.flushRepeats(), THROTTLE_MS);
        return;
      }
    } else {
      this.flushRepeats();
      last.count = 1;
    }
    last.key = key;
    last.entry = entry;
    this.family.writer.log(entry);
  }

  /** Writes the held copies of the last message once, with how many there were. */
  private flushRepeats(): void {
    const last = this.last;
    const repeated = last.count - THROTTLE_MIN;
    if (last.entry && repeated > 0) {
      this.family.writer.log({ ...last.entry, date: new Date(), args: repeated > 1 ? [...last.entry.args, `(repeated ${repeated} times)`] : last.entry.args });
      last.count = THROTTLE_MIN;
    }
  }
}

/** The logger, `reopen` for the log file (a no-op without one), and `setLevel` (a config reload reaches every child). */
export function createLogger(opts: LogOptions): { log: Logger; reopen: () => void; setLevel: (level: LogLevel) => void } {
  const sink = opts.file ? fileSink(opts.file) : stderrSink();
  const writer = new LineWriter(opts.format, sink, () => log.level);
  const family: Family = { writer, all: new Set() };
  const log = new Logger(family, "", LEVELS[opts.level]);
  family.all.add(new WeakRef(log));
  const setLevel = (level: LogLevel) => {
    for (const r of family.all) {
      const l = r.deref();
      if (l) l.level = LEVELS[level];
      else family.all.delete(r);
    }
  };
  const reopen = () => {
    writer.flush();
    sink.reopen();
  };
  return { log, reopen, setLevel };
}
