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
  /** When the read in flight began: only time spent waiting for the upstream counts as idle. */
  let waitStart = windowStart;
  let waiting = false;
  let failure: Error | null = null;
  let timer: Timer | undefined;
  let ended = false;

  const stop = () => {
    ended = true;
    clearTimeout(timer);
  };
  const fail = (err: Error) => {
    failure ??= err;
    stop();
    // Ends the read in flight (it resolves as done); next() then throws the failure.
    void reader.cancel().catch(() => {});
  };
  /** Checks the limits, then sleeps until the next deadline: one timer per body, not one per chunk. */
  const check = () => {
    if (ended) return;
    const now = performance.now();
    if (waiting && now - waitStart >= idleTimeoutMs) return fail(new Error(`no data from upstream for ${idleTimeoutMs} ms`));
    // A window that ends while the consumer works is judged when it next waits for the upstream.
    if (rate && waiting && now - windowStart >= rate.windowMs) {
      const perSecond = (windowBytes * 1000) / (now - windowStart);
      if (perSecond < rate.bytesPerSecond) {
        return fail(new Error(`upstream sent ${Math.round(perSecond)} bytes/s over ${Math.round(rate.windowMs / 1000)} s, below the minimum of ${rate.bytesPerSecond} (minTransferRate)`));
      }
      windowStart = now;
      windowBytes = 0;
    }
    const next = waiting ? Math.min(waitStart + idleTimeoutMs, rate ? windowStart + rate.windowMs : Infinity) : now + idleTimeoutMs;
    clearTimeout(timer);
    timer = setTimeout(check, Math.max(1, next - now));
  };

  return {
    cancel() {
      stop();
      void reader.cancel().catch(() => {});
    },
    async next() {
      if (failure) throw failure;
      if (ended) return null;
      waitStart = performance.now();
      waiting = true;
      if (timer === undefined || (rate && waitStart - windowStart >= rate.windowMs)) check();
      if (failure) throw failure;
      let chunk: Awaited<ReturnType<typeof reader.read>>;
      try {
        chunk = await reader.read();
      } catch (err) {
        stop();
        throw failure ?? err;
      } finally {
        waiting = false;
      }
      if (failure) throw failure;
      if (chunk.done) {
        stop();
        return null;
      }
      windowBytes += chunk.value.byteLength;
      return chunk.value;
    },
  };
}
