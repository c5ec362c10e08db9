// The names of the store's tag records, kept in memory so the admin API can page and search 30,000
// tags in milliseconds instead of reading every record: built from one key listing (no record is
// read), kept up to date by this process's own writes and removals (its store goes through
// `store`), and rebuilt in the background once older than a minute, for what other processes
// (load, prune, a replica on the same bucket) changed.
import { recordName } from "../store/record.ts";
import type { Store, TagRecord, TagUpdateOptions } from "../store/types.ts";

export type TagPlace = Pick<TagRecord, "upstream" | "repository" | "tag">;

/** How old the index may get before a query rebuilds it in the background. */
const MAX_AGE_MS = 60_000;

export interface TagPage {
  places: TagPlace[];
  /** The name to pass as the next cursor; null on the last page. */
  next: string | null;
  /** How many names match the search (all names without one). */
  total: number;
}

export interface TagIndex {
  /** The store to use: its writes and removals of records also update the index. */
  readonly store: Store;
  /** Names after `cursor` (a name, exclusive) that contain `q` (any case), in name order, at most `limit`. */
  page(o: { limit: number; cursor?: string; q?: string }): Promise<TagPage>;
  /** How many names are held in memory: none until the first page is asked for. */
  held(): number;
}

/** The first index whose name sorts after `cursor`. */
function after(sorted: readonly string[], cursor: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! <= cursor) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export function createTagIndex(inner: Store, opts: { maxAgeMs?: number; now?: () => number } = {}): TagIndex {
  const maxAge = opts.maxAgeMs ?? MAX_AGE_MS;
  const now = opts.now ?? Date.now;
  let places = new Map<string, TagPlace>();
  /** Names in order and in lower case, made again only after a change. */
  let sorted: { names: string[]; lower: string[] } | null = null;
  let builtAt = -Infinity;
  let building: Promise<void> | null = null;
  /** Changes this process made while a rebuild listed the store: applied over its result. */
  let during: Array<[TagPlace, boolean]> | null = null;

  function note(place: TagPlace, present: boolean) {
    // No index yet (no page was asked for): nothing to keep up to date, the first build lists the
    // store. Otherwise every record the cache writes would stay here, one entry per tag ever pulled.
    if (builtAt === -Infinity && !during) return;
    const name = recordName(place);
    if (present) places.set(name, { upstream: place.upstream, repository: place.repository, tag: place.tag });
    else places.delete(name);
    sorted = null;
    during?.push([place, present]);
  }

  function rebuild(): Promise<void> {
    building ??= (async () => {
      during = [];
      try {
        const fresh = new Map<string, TagPlace>();
        for await (const p of inner.tagPlaces()) fresh.set(recordName(p), p);
        const changes = during;
        places = fresh;
        during = null;
        for (const [p, present] of changes) note(p, present);
        sorted = null;
        builtAt = now();
      } finally {
        during = null;
        building = null;
      }
    })();
    return building;
  }

  async function current(): Promise<{ names: string[]; lower: string[] }> {
    if (builtAt === -Infinity) await rebuild();
    // Stale but usable: answer now, refresh for the next query.
    else if (now() - builtAt > maxAge) void rebuild().catch(() => {});
    if (!sorted) {
      const names = [...places.keys()].sort();
      sorted = { names, lower: names.map((n) => n.toLowerCase()) };
    }
    return sorted;
  }

  const store: Store = Object.assign(Object.create(inner) as Store, {
    async writeTag(record: TagRecord) {
      await inner.writeTag(record);
      note(record, true);
    },
    async removeTag(upstream: string, repository: string, tag: string) {
      await inner.removeTag(upstream, repository, tag);
      note({ upstream, repository, tag }, false);
    },
    async updateTag(place: TagPlace, change: (current: TagRecord | null) => TagRecord | null, opts?: TagUpdateOptions) {
      const u = await inner.updateTag(place, change, opts);
      note(place, u.record !== null);
      return u;
    },
    async removeTagIf(expected: TagRecord) {
      const removed = await inner.removeTagIf(expected);
      if (removed) note(expected, false);
      return removed;
    },
  });

  return {
    store,
    held: () => places.size,
    async page({ limit, cursor, q }) {
      const { names, lower } = await current();
      const needle = q?.toLowerCase() ?? "";
      const out: TagPlace[] = [];
      let total = 0;
      let next: string | null = null;
      let last: string | null = null;
      const from = cursor ? after(names, cursor) : 0;
      if (!needle) total = names.length;
      // Without a search only the page is visited; with one every name is (a substring test each).
      for (let i = needle ? 0 : from; i < names.length; i++) {
        if (needle && !lower[i]!.includes(needle)) continue;
        if (needle) total++;
        if (i < from) continue;
        if (out.length === limit) {
          next = last;
          if (!needle) break;
          continue;
        }
        out.push(places.get(names[i]!)!);
        last = names[i]!;
      }
      return { places: out, next, total };
    },
  };
}
