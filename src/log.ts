// The logger: one consola instance, a tagged child per module, text or JSON lines, to standard
// error or to a file that can be reopened (SIGHUP, after logrotate moved it). Text lines show
// control characters escaped, whoever wrote the message (a client, an upstream, an archive).
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

/** Wraps consola's own text reporters: they format as before, but only what safeText made of the arguments. */
function escaping(inner: ConsolaReporter[]): ConsolaReporter {
  return {
    log(obj, ctx) {
      const safe = { ...obj, tag: escapeText(obj.tag), args: [safeText(obj.args)] };
      for (const r of inner) r.log(safe, ctx);
    },
  };
}

/** A sink that writes whole lines to a file descriptor, reopening the file on demand. */
function fileSink(path: string) {
  let fd = openSync(path, "a", 0o640);
  return {
    write(chunk: string) {
      writeSync(fd, chunk);
      return true;
    },
    reopen() {
      const next = openSync(path, "a", 0o640);
      const old = fd;
      fd = next;
      closeSync(old);
    },
  };
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
  const sink = opts.file ? fileSink(opts.file) : null;
  const out = (sink ?? process.stderr) as unknown as NodeJS.WriteStream;
  const reporters =
    opts.format === "json"
      ? [{
          log(obj: LogObject) {
            const line = jsonText({
              time: obj.date.toISOString(), level: obj.type, tag: obj.tag || undefined,
              msg: obj.args.map((a) => (typeof a === "string" ? a : a instanceof LogLines ? a.lines.join("\n") : a instanceof Error ? a.message : JSON.stringify(a))).join(" "),
            });
            out.write(line + "\n");
          },
        }]
      : undefined;
  const log = createConsola({
    level: LEVELS[opts.level], ...(reporters ? { reporters } : {}), stdout: out, stderr: out,
    formatOptions: { date: true, colors: false },
  });
  if (!reporters) log.setReporters([escaping(log.options.reporters)]);
  return { log, reopen: () => sink?.reopen(), setLevel: levelControl(log) };
}
