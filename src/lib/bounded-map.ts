// A map with a cap on entries (and optionally on their total weight) that forgets the least
// recently used entry first. Every map keyed by something a client or an upstream chooses is one
// of these, so no request pattern can grow the process without bound.
export class BoundedMap<K, V> {
  private map = new Map<K, { value: V; weight: number; tick: number }>();
  private total = 0;
  private clock = 0;
  /**
   * Where eviction goes on: a live iterator over the map. Entries are only ever evicted from the
   * front and moved to the back, so nothing live is behind it; a fresh iterator for every eviction
   * would walk again past every slot deleted so far (10 µs per insert into a full 10,000-entry map).
   */
  private cursor: Iterator<[K, { value: V; weight: number; tick: number }]> | null = null;
  constructor(
    private readonly maxEntries: number,
    private readonly maxWeight = Infinity,
    private readonly weigh: (v: V) => number = () => 0,
  ) {}

  get(key: K): V | undefined {
    const e = this.map.get(key);
    if (!e) return undefined;
    // Moved to the recent end only once it has drifted into the older half: an entry hit again and
    // again stays put (approximate LRU, no map churn on the hot path).
    if (this.clock - e.tick >= this.map.size / 2) {
      this.map.delete(key);
      this.map.set(key, e);
      e.tick = ++this.clock;
    }
    return e.value;
  }

  /** The value without counting a use (the entry keeps its place in the eviction order). */
  peek(key: K): V | undefined {
    return this.map.get(key)?.value;
  }

  has(key: K): boolean {
    return this.map.has(key);
  }

  set(key: K, value: V): this {
    this.delete(key);
    const weight = this.weigh(value);
    if (weight > this.maxWeight) return this;
    this.map.set(key, { value, weight, tick: ++this.clock });
    this.total += weight;
    while (this.map.size > this.maxEntries || this.total > this.maxWeight) {
      let next = (this.cursor ??= this.map.entries()).next();
      if (next.done) next = (this.cursor = this.map.entries()).next();
      if (next.done) break;
      const [k, e] = next.value;
      this.map.delete(k);
      this.total -= e.weight;
    }
    return this;
  }

  delete(key: K): boolean {
    const e = this.map.get(key);
    if (!e) return false;
    this.map.delete(key);
    this.total -= e.weight;
    return true;
  }

  /** Removes every entry for which `drop` is true (e.g. expired ones). */
  sweep(drop: (v: V, k: K) => boolean) {
    for (const [k, e] of this.map) if (drop(e.value, k)) this.delete(k);
  }

  clear() {
    this.map.clear();
    this.cursor = null;
    this.total = 0;
  }

  get size(): number {
    return this.map.size;
  }

  get weight(): number {
    return this.total;
  }

  values(): IterableIterator<V> {
    return [...this.map.values()].map((e) => e.value)[Symbol.iterator]();
  }

  entries(): Array<[K, V]> {
    return [...this.map].map(([k, e]) => [k, e.value]);
  }
}

/**
 * `true` the first time a key is seen in each `intervalMs` window, `false` otherwise: for log
 * lines said once per upstream and reason per minute. Remembers at most 10,000 keys.
 */
export function createOncePer(intervalMs: number, now: () => number = Date.now): (key: string) => boolean {
  const seen = new BoundedMap<string, number>(10_000);
  return (key) => {
    const t = now();
    const last = seen.get(key);
    if (last !== undefined && t - last < intervalMs) return false;
    seen.set(key, t);
    return true;
  };
}
