// Gives memory back after a burst: JavaScriptCore keeps the heap a burst of requests grew it to
// (after 10,000 pulls about 15 MiB more than it needs). Once the requests stop, one full
// collection and Bun.shrink() return the free pages, at most once a minute.

/** How often quiet is checked; the timer is unref'd and costs a comparison. */
export const TRIM_CHECK_MS = 1000;
/** Quiet needed before a trim: no request finished and no download running for this long. */
export const TRIM_QUIET_MS = 2000;
/** The least time between two trims (a full collection pauses the process for tens of ms). */
export const TRIM_GAP_MS = 60_000;

export interface IdleTrimOptions {
  now?: () => number;
  /** What a trim does (default: a full collection, then Bun.shrink()). */
  trim?: () => void;
}

const defaultTrim = () => {
  Bun.gc(true);
  Bun.shrink();
};

/** `check()` trims when requests came since the last trim and none for TRIM_QUIET_MS; true when it did. */
export function createIdleTrim(counts: Readonly<{ requests: number; downloadsInFlight: number }>, o: IdleTrimOptions = {}) {
  const now = o.now ?? Date.now;
  const trim = o.trim ?? defaultTrim;
  let seen = counts.requests;
  let movedAt = now();
  // The first quiet moment after start trims too: the start-up count of the store leaves garbage.
  let owed = true;
  let trimmedAt = -Infinity;
  return {
    check(): boolean {
      const t = now();
      if (counts.requests !== seen || counts.downloadsInFlight > 0) {
        seen = counts.requests;
        movedAt = t;
        owed = true;
        return false;
      }
      if (!owed || t - movedAt < TRIM_QUIET_MS || t - trimmedAt < TRIM_GAP_MS) return false;
      owed = false;
      trimmedAt = t;
      trim();
      return true;
    },
  };
}
