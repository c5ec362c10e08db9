// The logger: one consola instance, a tagged child per module, text or JSON lines, to standard
// error or to a file that can be reopened (SIGHUP, after logrotate moved it).
import { closeSync, openSync, writeSync } from "node:fs";
import { createConsola, type ConsolaInstance, type LogObject } from "consola";
import type { LogLevel } from "./config/schema.ts";

const LEVELS: Record<LogLevel, number> = { error: 0, warn: 1, info: 3, debug: 4, trace: 5 };

export type Logger = ConsolaInstance;

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

/** The logger, and `reopen` for the log file (a no-op without one). */
export function createLogger(opts: LogOptions): { log: Logger; reopen: () => void } {
  const sink = opts.file ? fileSink(opts.file) : null;
  const out = (sink ?? process.stderr) as unknown as NodeJS.WriteStream;
  const reporters =
    opts.format === "json"
      ? [{
          log(obj: LogObject) {
            const line = JSON.stringify({
              time: obj.date.toISOString(), level: obj.type, tag: obj.tag || undefined,
              msg: obj.args.map((a) => (typeof a === "string" ? a : a instanceof Error ? a.message : JSON.stringify(a))).join(" "),
            });
            out.write(line + "\n");
          },
        }]
      : undefined;
  const log = createConsola({
    level: LEVELS[opts.level], ...(reporters ? { reporters } : {}), stdout: out, stderr: out,
    formatOptions: { date: true, colors: false },
  });
  return { log, reopen: () => sink?.reopen() };
}
