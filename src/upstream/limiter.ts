// A cap on concurrent requests per upstream, so one slow or hostile upstream cannot take every
// socket of the process: a slot is held from the request until its body is read, cancelled or
// broken, and waiting for one is bounded in time and in the number of waiters.
export interface LimiterOptions {
  /** Requests open at once to one upstream. */
  perUpstream: number;
  /** Waiters allowed per upstream before new requests fail at once. */
  maxWaiting?: number;
}

interface Lane {
  active: number;
  waiting: Array<() => void>;
}

export function createLimiter(opts: LimiterOptions) {
  const lanes = new Map<string, Lane>();
  const maxWaiting = opts.maxWaiting ?? opts.perUpstream * 16;

  function release(upstream: string, lane: Lane) {
    const next = lane.waiting.shift();
    if (next) return next();
    lane.active--;
    if (lane.active === 0) lanes.delete(upstream);
  }

  return {
    /** Resolves with a release function once a slot is free; false when none freed up within `timeoutMs` or too many wait. */
    async acquire(upstream: string, timeoutMs: number): Promise<(() => void) | false> {
      let lane = lanes.get(upstream);
      if (!lane) lanes.set(upstream, (lane = { active: 0, waiting: [] }));
      const l = lane;
      let released = false;
      const once = () => {
        if (!released) {
          released = true;
          release(upstream, l);
        }
      };
      if (l.active < opts.perUpstream) {
        l.active++;
        return once;
      }
      if (l.waiting.length >= maxWaiting) return false;
      return new Promise((resolve) => {
        const grant = () => {
          clearTimeout(timer);
          resolve(once);
        };
        const timer = setTimeout(() => {
          const i = l.waiting.indexOf(grant);
          if (i >= 0) l.waiting.splice(i, 1);
          resolve(false);
        }, timeoutMs);
        l.waiting.push(grant);
      });
    },
    /** Requests open to an upstream now (for status and tests). */
    active(upstream: string): number {
      return lanes.get(upstream)?.active ?? 0;
    },
    /** Requests open now, per upstream with any. */
    snapshot(): Record<string, number> {
      return Object.fromEntries([...lanes].map(([u, l]) => [u, l.active]));
    },
  };
}

/**
 * Wraps a response so `release` runs once its body is finished, cancelled or broken (or at once
 * if it has none); `onBytes` hears of every chunk read.
 */
export function releaseWhenDone(res: Response, release: () => void, onBytes?: (n: number) => void): Response {
  if (!res.body) {
    release();
    return res;
  }
  const reader = res.body.getReader();
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (done) {
          release();
          controller.close();
        } else {
          onBytes?.(value.byteLength);
          controller.enqueue(value);
        }
      } catch (err) {
        release();
        controller.error(err);
      }
    },
    cancel(reason) {
      release();
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
  return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
}
