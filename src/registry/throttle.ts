// Failed logins, throttled: per client address and per user name a few failures are free, then each
// further one locks the key twice as long as the last (capped). The check runs before any bcrypt,
// so a locked key costs nothing; attempts in flight count too, so 64 parallel guesses are 2, not 64.
import { BoundedMap } from "../lib/bounded-map.ts";

/** How an attempt ended: "failed" counts against its keys, "ok" resets the user's, "dropped" neither. */
export type AttemptEnd = "ok" | "failed" | "dropped";

export interface ThrottleOptions {
  /** Failures allowed before the first lock. */
  freeFailures?: number;
  /** First lock; each further failure doubles it. */
  baseLockMs?: number;
  maxLockMs?: number;
  /** Failures are forgotten this long after the last one (longer than maxLockMs, so waiting out a lock does not reset it). */
  forgetMs?: number;
  /** Attempts of one key being checked at once; more are told to come back in a second. */
  maxInFlight?: number;
  /** Keys remembered (the least recently used are forgotten first). */
  maxKeys?: number;
  now?: () => number;
}

interface Entry {
  failures: number;
  inFlight: number;
  lastFailure: number;
  lockedUntil: number;
}

/** A key that may not try now, and for how long. */
export interface Refusal {
  key: string;
  retryAfterMs: number;
}

export function createLoginThrottle(o: ThrottleOptions = {}) {
  const free = o.freeFailures ?? 5;
  const baseMs = o.baseLockMs ?? 1000;
  const maxMs = o.maxLockMs ?? 15 * 60_000;
  const forgetMs = o.forgetMs ?? 60 * 60_000;
  const maxInFlight = o.maxInFlight ?? 2;
  const now = o.now ?? Date.now;
  const entries = new BoundedMap<string, Entry>(o.maxKeys ?? 10_000);

  function entry(key: string): Entry | undefined {
    const e = entries.get(key);
    if (e && e.inFlight === 0 && now() - e.lastFailure > forgetMs) {
      entries.delete(key);
      return undefined;
    }
    return e;
  }

  /** Why `key` may not try now, or null when it may. */
  function refusal(key: string): Refusal | null {
    const e = entry(key);
    if (!e) return null;
    const t = now();
    if (e.lockedUntil > t) return { key, retryAfterMs: e.lockedUntil - t };
    // Past the free failures one attempt at a time, so a lock that ends does not let a burst through.
    if (e.inFlight >= maxInFlight || (e.failures >= free && e.inFlight > 0)) return { key, retryAfterMs: 1000 };
    return null;
  }

  function fail(key: string) {
    const t = now();
    const e = entry(key) ?? { failures: 0, inFlight: 0, lastFailure: t, lockedUntil: 0 };
    e.failures++;
    e.lastFailure = t;
    if (e.failures >= free) e.lockedUntil = t + Math.min(maxMs, baseMs * 2 ** Math.min(30, e.failures - free));
    entries.set(key, e);
  }

  return {
    refusal,
    /** Whether `key` has no failures on record (its checks go first). */
    clean: (key: string) => !entry(key)?.failures,
    /** Counts a failure that was refused before any check (a locked user's guess counts for its address). */
    fail,
    /**
     * Starts an attempt for `keys` (an address and a user name): a Refusal when one of them may not
     * try now, else the function that ends the attempt. `resetOnSuccess` keys are cleared by "ok".
     */
    begin(keys: string[], resetOnSuccess: string[] = []): Refusal | ((end: AttemptEnd) => void) {
      for (const k of keys) {
        const r = refusal(k);
        if (r) return r;
      }
      const started = keys.map((k) => {
        const e = entry(k) ?? { failures: 0, inFlight: 0, lastFailure: now(), lockedUntil: 0 };
        e.inFlight++;
        entries.set(k, e);
        return [k, e] as const;
      });
      let ended = false;
      return (end) => {
        if (ended) return;
        ended = true;
        for (const [k, e] of started) {
          e.inFlight--;
          if (end === "failed") fail(k);
          else if (end === "ok" && resetOnSuccess.includes(k)) entries.delete(k);
          else if (e.failures === 0 && e.inFlight === 0) entries.delete(k);
        }
      };
    },
    /** Keys remembered now (for tests: the map stays bounded). */
    get size() {
      return entries.size;
    },
  };
}

/**
 * The throttling key of a client address: IPv4 (also IPv4-mapped IPv6) as is, other IPv6 by its
 * /64, since one host usually holds a whole /64 and could otherwise rotate through it.
 */
export function clientKey(address: string | undefined): string {
  if (!address) return "unknown";
  const a = address.toLowerCase().replace(/%.*$/, "");
  if (!a.includes(":")) return a;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (mapped) return mapped[1]!;
  const [head = "", tail] = a.split("::");
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const groups = tail === undefined ? left : [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill("0"), ...right];
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, "")).join(":")}::/64`;
}
