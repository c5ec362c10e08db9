// Caps on upstream requests, so no upstream, however hostile or slow, can take the sockets every
// other upstream needs. Requests are counted per upstream identity (resolved address and port, see
// identity.ts) and in one process-wide budget kept below the runtime's own limit on fetches in
// flight. A slot is held from the request until its body is read, cancelled or broken. When the
// budget is spent, a freed slot goes to the waiting upstream that holds the fewest: while others
// wait, no upstream gets more than its share. Upstreams clients name (not listed by the operator)
// hold at most half the budget together, so however many addresses and ports a hostile one
// brings, listed upstreams always find room. Waiting is bounded in time and in waiters.
export interface LimiterOptions {
  /** Requests open at once to one upstream identity. */
  perUpstream: number;
  /** Requests open at once to all upstreams together (default: unbounded beyond perUpstream). */
  total?: number;
  /** Waiters allowed per upstream before new requests fail at once. */
  maxWaiting?: number;
  /** Requests open at once to all client-named upstreams together (default: half of `total`). */
  unlisted?: number;
}

interface Lane {
  active: number;
  waiting: Array<() => void>;
  listed: boolean;
}

export interface Limiter {
  /**
   * Resolves with a release function once a slot is free; false when none freed up within
   * `timeoutMs` or too many wait. `listed`: the operator listed the upstream (default true).
   */
  acquire(upstream: string, timeoutMs: number, listed?: boolean): Promise<(() => void) | false>;
  /** Requests open to an upstream now (for status and tests). */
  active(upstream: string, listed?: boolean): number;
  /** Requests open now, per upstream with any. */
  snapshot(): Record<string, number>;
  /** Requests open now, all upstreams together. */
  total(): number;
}

export function createLimiter(opts: LimiterOptions): Limiter {
  const lanes = new Map<string, Lane>();
  const perLane = opts.perUpstream;
  const budget = opts.total ?? Infinity;
  const maxWaiting = opts.maxWaiting ?? perLane * 16;
  const unlistedBudget = opts.unlisted ?? Math.max(1, Math.floor(budget / 2));
  let active = 0;
  let unlistedActive = 0;

  /** Under the lane's own cap, the budget and, for a client-named upstream, the share of them all. */
  const hasRoom = (lane: Lane) => lane.active < perLane && active < budget && (lane.listed || unlistedActive < unlistedBudget);
  /** A lane may take a free slot now: there is room, and nobody is queued before it. */
  const mayStart = (lane: Lane) => hasRoom(lane) && lane.waiting.length === 0;
  const take = (lane: Lane) => {
    lane.active++;
    active++;
    if (!lane.listed) unlistedActive++;
  };

  /** Hands freed slots to waiting lanes, fewest open requests first. */
  function dispatch() {
    while (active < budget) {
      let pick: Lane | undefined;
      for (const lane of lanes.values()) {
        if (lane.waiting.length && hasRoom(lane) && (!pick || lane.active < pick.active)) pick = lane;
      }
      if (!pick) return;
      take(pick);
      pick.waiting.shift()!();
    }
  }

  function release(key: string, lane: Lane) {
    lane.active--;
    active--;
    if (!lane.listed) unlistedActive--;
    dispatch();
    if (lane.active === 0 && lane.waiting.length === 0) lanes.delete(key);
  }

  return {
    async acquire(upstream, timeoutMs, listed = true) {
      // A client-named spelling of a listed upstream's address is a lane of its own: it cannot
      // take the listed upstream's slots.
      const key = listed ? upstream : `${upstream} (client-named)`;
      let lane = lanes.get(key);
      if (!lane) lanes.set(key, (lane = { active: 0, waiting: [], listed }));
      const l = lane;
      let released = false;
      const once = () => {
        if (!released) {
          released = true;
          release(key, l);
        }
      };
      if (mayStart(l)) {
        take(l);
        return once;
      }
      if (l.waiting.length >= maxWaiting) return false;
      return new Promise((resolve) => {
        // dispatch() counts the slot as taken before it calls grant.
        const grant = () => {
          clearTimeout(timer);
          resolve(once);
        };
        const timer = setTimeout(() => {
          const i = l.waiting.indexOf(grant);
          if (i >= 0) l.waiting.splice(i, 1);
          if (l.active === 0 && l.waiting.length === 0) lanes.delete(key);
          resolve(false);
        }, timeoutMs);
        l.waiting.push(grant);
      });
    },
    active(upstream, listed = true) {
      return lanes.get(listed ? upstream : `${upstream} (client-named)`)?.active ?? 0;
    },
    snapshot() {
      return Object.fromEntries([...lanes].filter(([, l]) => l.active > 0).map(([u, l]) => [u, l.active]));
    },
    total: () => active,
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
  try {
    return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
  } catch (err) {
    // A response that cannot be carried on (a status outside 200-599) must not keep its slot.
    reader.cancel().catch(() => {});
    release();
    throw err;
  }
}
