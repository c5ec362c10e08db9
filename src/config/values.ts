// Value validators for the configuration: each checks one value and names its key in the error
// (`registries[1].tls.ca: cannot read /x.pem: ENOENT`).
import { readFileSync } from "node:fs";
import { ConfigError } from "./error.ts";
import { parseDuration } from "./duration.ts";
import { LOG_LEVELS, type LogLevel } from "./schema.ts";

export type Raw = Record<string, unknown>;

export function isObject(v: unknown): v is Raw {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

export function str(v: unknown, key: string): string {
  if (typeof v !== "string" || v === "") throw new ConfigError(key, "must be a non-empty string");
  return v;
}

export function bool(v: unknown, key: string): boolean {
  if (typeof v === "boolean") return v;
  if (v === "true") return true;
  if (v === "false") return false;
  throw new ConfigError(key, "must be true or false");
}

export function port(v: unknown, key: string): number {
  const n = typeof v === "number" ? v : typeof v === "string" && /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new ConfigError(key, `must be a port number 0-65535, got ${JSON.stringify(v)}`);
  return n;
}

export function millis(v: unknown, key: string): number {
  // A bare number is milliseconds for pullTimeout (the seed's unit).
  if (typeof v === "number" || (typeof v === "string" && /^\d+$/.test(v))) {
    const n = Number(v);
    if (n > 0) return n;
  } else if (typeof v === "string") {
    const d = parseDuration(v);
    if (d !== null && d > 0) return d;
  }
  throw new ConfigError(key, `must be a positive number of milliseconds or a duration like 30s, got ${JSON.stringify(v)}`);
}

export function duration(v: unknown, key: string): number {
  const d = typeof v === "string" || typeof v === "number" ? parseDuration(v) : null;
  if (d === null) throw new ConfigError(key, `must be a duration like 30s, 5m or 1h, got ${JSON.stringify(v)}`);
  return d;
}

export function readFileText(path: unknown, key: string): string {
  const p = str(path, key);
  try {
    return readFileSync(p, "utf8");
  } catch (err) {
    throw new ConfigError(key, `cannot read ${p}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

export function logLevel(v: unknown, key: string): LogLevel {
  if (typeof v === "string" && (LOG_LEVELS as string[]).includes(v)) return v as LogLevel;
  throw new ConfigError(key, `must be one of ${LOG_LEVELS.join(", ")}`);
}

export function keysOf(v: Raw, key: string, allowed: string[]) {
  for (const k of Object.keys(v)) if (!allowed.includes(k)) throw new ConfigError(`${key}.${k}`, "unknown key");
}

/** A regular expression from a flag or key; a ConfigError naming it when it does not compile. */
export function compilePattern(p: string, key: string): RegExp {
  try {
    return new RegExp(p);
  } catch (err) {
    throw new ConfigError(key, `not a regular expression: ${(err as Error).message}`);
  }
}

const RATE_UNITS: Record<string, number> = { "": 1, b: 1, kb: 1000, kib: 1024, mb: 1000 ** 2, mib: 1024 ** 2 };

/** Bytes per second from `1KiB/s`, `500B/s`, `2MB/s` or a bare number of bytes per second; 0 turns the check off. */
export function transferRate(v: unknown, key: string): number {
  const m = typeof v === "number" ? [String(v), String(v), ""] : typeof v === "string" ? v.trim().match(/^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)(?:\/s)?$/) : null;
  const unit = RATE_UNITS[(m?.[2] ?? "").toLowerCase()];
  const n = m && unit !== undefined ? Number(m[1]) * unit : NaN;
  if (!Number.isFinite(n) || n < 0) throw new ConfigError(key, `must be a rate like 1KiB/s, 500B/s or 0 (off), got ${JSON.stringify(v)}`);
  return Math.floor(n);
}
