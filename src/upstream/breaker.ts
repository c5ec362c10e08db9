// A circuit breaker per upstream: after repeated failures (connection errors, timeouts, 5xx,
// 429) requests fail at once instead of waiting on a dead upstream, and one probe request is let
// through after a backoff that doubles up to a ceiling. A success closes the circuit. Clients
// name upstreams, so the states kept are bounded.
import { BoundedMap } from "../lib/bounded-map.ts";

export interface BreakerOptions {
  /** Consecutive failures that open the circuit. */
  threshold?: number;
  /** First wait before a probe. */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  now?: () => number;
  /** Told when an upstream's circuit opens (true) or closes again (false). */
  onChange?: (upstream: string, open: boolean) => void;
}

export interface BreakerState {
  upstream: string;
  state: "open" | "half-open";
  failures: number;
  retryInMs: number;
}

interface State {
  failures: number;
  /** When the circuit is open: the time a probe may go through. */
  openUntil: number;
  backoffMs: number;
  probing: boolean;
  /** Opened by a 429: the wait is the upstream's Retry-After, not a backoff. */
  rateLimited: boolean;
}

export function createBreakers(opts: BreakerOptions = {}) {
  const threshold = opts.threshold ?? 3;
  const initial = opts.initialBackoffMs ?? 1000;
  const max = opts.maxBackoffMs ?? 60_000;
  const now = opts.now ?? Date.now;
  const states = new BoundedMap<string, State>(10_000);

  function state(upstream: string): State {
    let s = states.get(upstream);
    if (!s) {
      s = { failures: 0, openUntil: 0, backoffMs: initial, probing: false, rateLimited: false };
      states.set(upstream, s);
    }
    return s;
  }

  return {
    /**
     * Whether a request may go to the upstream now. Returns the milliseconds until the next probe
     * when it may not.
     */
    admit(upstream: string): { ok: true } | { ok: false; retryInMs: number; rateLimited: boolean } {
      const s = states.get(upstream);
      if (!s || s.failures < threshold) return { ok: true };
      const t = now();
      if (t >= s.openUntil && !s.probing) {
        s.probing = true;
        return { ok: true };
      }
      return { ok: false, retryInMs: Math.max(0, s.openUntil - t), rateLimited: s.rateLimited };
    },
    /** A probe that was admitted but never sent: let the next request probe instead. */
    release(upstream: string) {
      const s = states.get(upstream);
      if (s) s.probing = false;
    },
    success(upstream: string) {
      const s = states.get(upstream);
      if (!s) return;
      states.delete(upstream);
      if (s.failures >= threshold) opts.onChange?.(upstream, false);
    },
    /** Opens the circuit for `ms` (an upstream's 429 with Retry-After); a probe goes through after it. */
    openFor(upstream: string, ms: number) {
      const s = state(upstream);
      if (s.failures < threshold) opts.onChange?.(upstream, true);
      s.failures = Math.max(s.failures, threshold);
      s.probing = false;
      s.rateLimited = true;
      s.openUntil = now() + ms;
    },
    failure(upstream: string) {
      const s = state(upstream);
      s.failures++;
      if (s.failures < threshold) return;
      if (s.failures === threshold) opts.onChange?.(upstream, true);
      if (s.probing) s.backoffMs = Math.min(max, s.backoffMs * 2);
      s.probing = false;
      s.rateLimited = false;
      s.openUntil = now() + s.backoffMs;
    },
    /** Upstreams whose circuit is open now (or letting a probe through). */
    open(): BreakerState[] {
      const t = now();
      return [...states.entries()].filter(([, s]) => s.failures >= threshold).map(([upstream, s]) => ({
        upstream, failures: s.failures, retryInMs: Math.max(0, s.openUntil - t), state: t >= s.openUntil ? "half-open" as const : "open" as const,
      }));
    },
  };
}
