// Work that can wait a moment for clients to be served first: the S3 upload of a blob whose bytes
// the clients already have. Where S3 shares the machine's cores with the cache (Ceph RGW beside
// it), uploading while a pull runs slowed the pull by half; waiting until nothing is in flight
// for a short while, and never longer than a bound, gives the clients the cores and still stores
// the blob within seconds.

export interface QuietGate {
  /** Resolves once no request has been in flight for the grace time, after the longest wait, or at once when open. */
  wait(): Promise<void>;
  /** What says whether a request is being served now (the listener's requests in flight). */
  watch(busy: () => boolean): void;
  /** Waits no more, now or later (a stop: what waits goes at once). */
  open(): void;
}

export interface QuietOptions {
  /** How long nothing must be in flight (default 50 ms). */
  graceMs?: number;
  /** The longest any wait lasts, however busy (default 2 s). */
  maxWaitMs?: number;
  /** How often the probe is asked while something waits (default 10 ms). */
  pollMs?: number;
  now?: () => number;
}

export function createQuietGate(o: QuietOptions = {}): QuietGate {
  const graceMs = o.graceMs ?? 50;
  const maxWaitMs = o.maxWaitMs ?? 2000;
  const pollMs = o.pollMs ?? 10;
  // A monotonic clock: a wall clock stepped back would stretch the longest wait.
  const now = o.now ?? (() => performance.now());
  let busy: (() => boolean) | null = null;
  let opened = false;
  let waiters: Array<{ until: number; resolve: () => void }> = [];
  /** Since when nothing has been in flight (null: something is, or nobody waits). */
  let quietSince: number | null = null;
  let timer: Timer | null = null;

  function tick() {
    const t = now();
    let probe = true;
    try {
      probe = !opened && !!busy?.();
    } catch {
      probe = false; // a probe that fails says nothing: do not hold the work back for it
    }
    if (probe) quietSince = null;
    else quietSince ??= t;
    // Waiters exist only with a probe (wait() lets everything go at once without one).
    const release = opened || (quietSince !== null && t - quietSince >= graceMs);
    const go = release ? waiters : waiters.filter((w) => t >= w.until);
    if (go.length === 0) return;
    waiters = release ? [] : waiters.filter((w) => t < w.until);
    for (const w of go) w.resolve();
    if (waiters.length === 0 && timer) {
      clearInterval(timer);
      timer = null;
      quietSince = null;
    }
  }

  return {
    wait() {
      // Without a probe (no listener: `load`, tests) there is nobody to make room for.
      if (opened || !busy) return Promise.resolve();
      return new Promise<void>((resolve) => {
        waiters.push({ until: now() + maxWaitMs, resolve });
        timer ??= setInterval(tick, pollMs);
      });
    },
    watch(probe) {
      busy = probe;
    },
    open() {
      opened = true;
      tick();
    },
  };
}
