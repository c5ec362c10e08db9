// Gives memory back after a burst: JavaScriptCore keeps the heap a burst of requests grew it to
// (after 10,000 pulls about 15 MiB more than it needs). Once a burst stops, one full collection
// and Bun.shrink() return the free pages; health probes and a trickle of pulls cause none.

/** How often quiet is checked; the timer is unref'd and costs a comparison. */
export const TRIM_CHECK_MS = 1000;
/** Quiet needed before a trim: no request finished and no download running for this long. */
export const TRIM_QUIET_MS = 2000;
/** The least time between two trims (a full collection pauses the process for tens of ms). */
export const TRIM_GAP_MS = 10_000;
/** Requests since the last trim that make a burst worth one (probes every 10 s take 40 min). */
export const TRIM_MIN_REQUESTS = 256;

export interface IdleTrimOptions {
  now?: () => number;
  /** What a trim does (default: a full collection, then Bun.shrink()). */
  trim?: () => void;
}

const defaultTrim = () => {
  Bun.gc(true);
  Bun.shrink();
};

/** `check()` trims when TRIM_MIN_REQUESTS came since the last trim and none for TRIM_QUIET_MS; true when it did. */
export function createIdleTrim(counts: Readonly<{ requests: number; downloadsInFlight: number }>, o: IdleTrimOptions = {}) {
  const now = o.now ?? Date.now;
  const trim = o.trim ?? defaultTrim;
  let seen = counts.requests;
  let movedAt = now();
  /** Requests counted at the last trim; the first quiet moment after start trims too (start-up garbage). */
  let base = -TRIM_MIN_REQUESTS;
  let trimmedAt = -Infinity;
  return {
    check(): boolean {
      const t = now();
      if (counts.requests !== seen || counts.downloadsInFlight > 0) {
        seen = counts.requests;
        movedAt = t;
        return false;
      }
      if (seen - base < TRIM_MIN_REQUESTS || t - movedAt < TRIM_QUIET_MS || t - trimmedAt < TRIM_GAP_MS) return false;
      base = seen;
      trimmedAt = t;
      trim();
      return true;
    },
  };
}
