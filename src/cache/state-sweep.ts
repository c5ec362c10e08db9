// Replicas on a shared store leave small state files behind when they die mid-work (kill -9, a
// node lost): a download lease in `state/flights/` nobody took over, a downloads file in
// `state/replicas/` nobody refreshes. Each is harmless once stale, but months of rollouts would
// pile them up (and every eviction lists `state/replicas/`): a periodic sweep removes those stale
// for long past any live holder's renewal.
import { FLIGHTS_DIR } from "./flight-leases.ts";
import { parse, REPLICAS_DIR } from "./replicas.ts";
import type { Store } from "../store/types.ts";

/** A state file this long past its expiry (a lease) or its last refresh (a downloads file) is a dead replica's. */
export const STALE_AFTER_MS = 10 * 60_000;
/** Files looked at per sweep at most: a sweep stays short, the next one goes on. */
const MAX_PER_SWEEP = 10_000;

/** When a state file stopped being live: a lease's expiry, a downloads file's last write; null when unreadable. */
function lastLive(dir: string, v: Record<string, unknown> | null): number | null {
  if (dir === FLIGHTS_DIR) return typeof v?.expires === "string" && Number.isFinite(Date.parse(v.expires)) ? Date.parse(v.expires) : null;
  return typeof v?.at === "number" ? v.at : null;
}

/**
 * Removes the stale files of both directories; answers how many. One it cannot read is left alone
 * (another version's, in a rolling update). A file is removed only if it is unchanged since read (a replica that took the
 * lease over meanwhile keeps it; S3 has no conditional delete, so a window of one round trip).
 */
export async function sweepStaleState(store: Store, now: number): Promise<number> {
  let removed = 0;
  let seen = 0;
  for (const dir of [FLIGHTS_DIR, REPLICAS_DIR]) {
    for await (const name of store.listState(dir)) {
      if (++seen > MAX_PER_SWEEP) return removed;
      const path = `${dir}/${name}`;
      const bytes = await store.readState(path).catch(() => null);
      if (!bytes) continue;
      const live = lastLive(dir, parse(bytes));
      if (live === null || now - live < STALE_AFTER_MS) continue;
      const again = await store.readState(path).catch(() => null);
      if (!again || Buffer.compare(again, bytes) !== 0) continue;
      await store.removeState(path);
      removed++;
    }
  }
  return removed;
}
