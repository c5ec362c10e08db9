// Fan-out over lists an upstream supplies (an index's manifests, an image's blobs, referrers): a
// few at a time, never all at once, and the first failure stops what has not started yet; and a
// budget of bytes for work whose memory grows with what an upstream sends (large manifests).
import pLimit, { type LimitFunction } from "p-limit";
import { discardBody } from "../upstream/body.ts";
import { CacheError } from "./errors.ts";

/**
 * Runs `fn` over `items` with at most `limit` (a count, or a limiter shared with other work)
 * running at once. After a failure no new item starts; the running ones finish, then the first
 * failure is thrown, so the caller reports the real cause rather than what its abandoned siblings
 * ran into afterwards.
 */
export async function forEachBounded<T>(items: Iterable<T>, limit: number | LimitFunction, fn: (item: T) => Promise<void>): Promise<void> {
  const run = typeof limit === "number" ? pLimit(limit) : limit;
  let failure = null as { err: unknown } | null;
  const jobs: Promise<void>[] = [];
  for (const item of items) {
    jobs.push(run(async () => {
      if (failure) return;
      try {
        await fn(item);
      } catch (err) {
        failure ??= { err };
      }
    }));
  }
  await Promise.all(jobs);
  if (failure) throw failure.err;
}

/** `fn` over `items`, at most `limit` at once, results in order (store reads; no early stop). */
export function mapBounded<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const run = pLimit(limit);
  return Promise.all(items.map((item) => run(() => fn(item))));
}

/**
 * Bytes held at once by some kind of work (large manifests being read and parsed): `take(n)`
 * waits, first come first served, until `n` more fit, and returns the release. A take larger than
 * the whole budget runs alone.
 */
export interface ByteBudget {
  /** The release once `n` fit; null when they did not within `timeoutMs`. */
  take(n: number, timeoutMs?: number): Promise<(() => void) | null>;
  /** Takes `n` at once when it fits and nobody waits; null otherwise. */
  tryTake(n: number): (() => void) | null;
}

export function createByteBudget(total: number): ByteBudget {
  let used = 0;
  const waiting: Array<{ n: number; go: () => void }> = [];
  const fits = (n: number) => used === 0 || used + n <= total;
  const pump = () => {
    while (waiting.length && fits(waiting[0]!.n)) {
      const w = waiting.shift()!;
      used += w.n;
      w.go();
    }
  };
  const releaser = (n: number) => {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      used -= n;
      pump();
    };
  };
  return {
    async take(n: number, timeoutMs = Infinity): Promise<(() => void) | null> {
      if (!waiting.length && fits(n)) {
        used += n;
        return releaser(n);
      }
      return new Promise((resolve) => {
        const w = { n, go: () => (clearTimeout(timer), resolve(releaser(n))) };
        const timer = Number.isFinite(timeoutMs) ? setTimeout(() => {
          const i = waiting.indexOf(w);
          if (i >= 0) waiting.splice(i, 1);
          // The head that timed out may have been what held back smaller takes behind it.
          pump();
          resolve(null);
        }, timeoutMs) : undefined;
        waiting.push(w);
      });
    },
    tryTake(n: number): (() => void) | null {
      if (waiting.length || !fits(n)) return null;
      used += n;
      return releaser(n);
    },
  };
}

/**
 * Sends `ask` and takes the answer's share (`weightOf`) of `budget` for the caller to release.
 * Bun buffers a response body nobody reads, so an answer that would have to wait is dropped and
 * asked for again once its share is free: waiting never holds a body in memory.
 */
export async function askWithinBudget(
  budget: ByteBudget, ask: () => Promise<Response>, weightOf: (res: Response) => number, timeoutMs: number,
): Promise<{ res: Response; release: (() => void) | null }> {
  const res = await ask();
  const weight = weightOf(res);
  if (!weight) return { res, release: null };
  const now = budget.tryTake(weight);
  if (now) return { res, release: now };
  discardBody(res);
  const release = await budget.take(weight, timeoutMs);
  if (!release) {
    throw new CacheError("busy", "manifest", `no room to read a large manifest within ${timeoutMs} ms: other large manifests are being read`);
  }
  try {
    return { res: await ask(), release };
  } catch (err) {
    release();
    throw err;
  }
}
