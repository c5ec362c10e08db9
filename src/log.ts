// The logger: one consola instance, a tagged child per module, text or JSON lines.
import { createConsola, type ConsolaInstance, type LogObject } from "consola";
import type { LogLevel } from "./config/schema.ts";

const LEVELS: Record<LogLevel, number> = { error: 0, warn: 1, info: 3, debug: 4, trace: 5 };

export type Logger = ConsolaInstance;

export function createLogger(level: LogLevel, format: "text" | "json"): Logger {
  const reporters =
    format === "json"
      ? [{
          log(obj: LogObject) {
            const line = JSON.stringify({
              time: obj.date.toISOString(), level: obj.type, tag: obj.tag || undefined,
              msg: obj.args.map((a) => (typeof a === "string" ? a : a instanceof Error ? a.message : JSON.stringify(a))).join(" "),
            });
            process.stderr.write(line + "\n");
          },
        }]
      : undefined;
  return createConsola({ level: LEVELS[level], ...(reporters ? { reporters } : {}), formatOptions: { date: true, colors: false } });
}
