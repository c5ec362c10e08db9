// Reading an upstream body with the two limits every blob transfer has: no data for the idle
// timeout ends it, and fewer bytes than the minimum rate over a whole window ends it (a drip
// cannot hold an upstream slot for ever). The stored download and the pass-through share it.
import type { TransferRate } from "./download.ts";

export interface TimedReader {
  /** The next chunk, or null at the end; rejects when a limit is passed. */
  next(): Promise<Uint8Array | null>;
  cancel(): void;
}

export function timedReader(body: ReadableStream<Uint8Array>, idleTimeoutMs: number, minRate?: TransferRate): TimedReader {
  const reader = body.getReader();
  const rate = minRate && minRate.bytesPerSecond > 0 && minRate.windowMs > 0 ? minRate : null;
  let windowStart = performance.now();
  let windowBytes = 0;
  let lastData = windowStart;
  let pending: ReturnType<typeof reader.read> | null = null;
  return {
    cancel: () => void reader.cancel().catch(() => {}),
    async next() {
      for (;;) {
        pending ??= reader.read();
        const now = performance.now();
        // Wake at the next idle deadline or the end of the rate window, whichever comes first.
        const wait = Math.max(0, Math.min(lastData + idleTimeoutMs, rate ? windowStart + rate.windowMs : Infinity) - now);
        let timer: Timer | undefined;
        const tick = new Promise<"tick">((resolve) => (timer = setTimeout(() => resolve("tick"), wait)));
        let chunk: Awaited<ReturnType<typeof reader.read>> | "tick";
        try {
          chunk = await Promise.race([pending, tick]);
        } finally {
          clearTimeout(timer);
        }
        const t = performance.now();
        let out: Uint8Array | null | undefined;
        if (chunk !== "tick") {
          pending = null;
          if (chunk.done) return null;
          lastData = t;
          windowBytes += chunk.value.byteLength;
          out = chunk.value;
        } else if (t - lastData >= idleTimeoutMs) {
          throw new Error(`no data from upstream for ${idleTimeoutMs} ms`);
        }
        if (rate && t - windowStart >= rate.windowMs) {
          const perSecond = (windowBytes * 1000) / (t - windowStart);
          if (perSecond < rate.bytesPerSecond) {
            throw new Error(`upstream sent ${Math.round(perSecond)} bytes/s over ${Math.round(rate.windowMs / 1000)} s, below the minimum of ${rate.bytesPerSecond} (minTransferRate)`);
          }
          windowStart = t;
          windowBytes = 0;
        }
        if (out) return out;
      }
    },
  };
}
