// Replicas sharing one store (S3): one eviction run at a time among them, under a lease in
// `state/evict.lease` ({owner, expires}, created only if absent, renewed while a run lasts, taken
// over once past its expiry: its holder died mid-run), and each replica's downloads published in
// `state/replicas/<owner>.json` ({owner, at, digests}) so that no other replica evicts them.
import { randomBytes } from "node:crypto";
import { isDigest } from "../oci/digest.ts";
import { processOwner } from "../store/owner.ts";
import type { Store } from "../store/types.ts";

export const LEASE = "evict.lease";
/** A lease not renewed for this long is taken to belong to a replica that died mid-run. */
export const LEASE_MS = 120_000;
const RENEW_MS = 30_000;
export const REPLICAS_DIR = "replicas";
/** How often a replica looks whether its downloads changed (and publishes them when they did). */
const PUBLISH_CHECK_MS = 1000;
/** A replica's file is written again this often while it has downloads … */
const REFRESH_MS = 10_000;
/** … and trusted for this long (a replica that died leaves a file nobody refreshes). */
export const FRESH_MS = 30_000;
const WAIT_POLL_MS = 250;
/** Digests read from one replica's file at most (a download each: far more than any replica runs). */
const MAX_DIGESTS = 10_000;

export interface Lease {
  /** Stops renewing and removes the lease (if it is still ours). */
  release(): Promise<void>;
}

export interface Replicas {
  /** This replica's name in the lease and in its file. */
  readonly owner: string;
  /** Takes the eviction lease; null while another replica holds one that has not expired. */
  acquire(): Promise<Lease | null>;
  /** Resolves once no other replica holds a live lease, or after `ms`. */
  waitFree(ms: number): Promise<void>;
  /** Digests the other replicas are downloading (from files fresher than FRESH_MS). */
  busyElsewhere(): Promise<Set<string>>;
  /** Publishes this replica's downloads while it has any; the returned stop removes its file. */
  publish(downloading: () => ReadonlySet<string>): () => Promise<void>;
}

const enc = (v: unknown) => new TextEncoder().encode(`${JSON.stringify(v)}\n`);

/** A state file's JSON object, or null (absent, not JSON, not an object). */
export function parse(bytes: Uint8Array | null): Record<string, unknown> | null {
  if (!bytes) return null;
  try {
    const v = JSON.parse(new TextDecoder().decode(bytes)) as unknown;
    return v && typeof v === "object" ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

function parseLease(bytes: Uint8Array | null): { owner: string; expires: number } | null {
  const v = parse(bytes);
  const expires = typeof v?.expires === "string" ? Date.parse(v.expires) : NaN;
  return v && typeof v.owner === "string" && Number.isFinite(expires) ? { owner: v.owner, expires } : null;
}

export function createReplicas(store: Store, now: () => number, warn: (m: string) => void): Replicas {
  // The process owner names this host's process; the random part keeps two containers apart
  // that share a kernel (the same boot id) and both run as PID 1.
  const owner = `${processOwner()}-${randomBytes(4).toString("hex")}`;
  const ownFile = `${REPLICAS_DIR}/${owner}.json`;
  const leaseBody = () => enc({ owner, expires: new Date(now() + LEASE_MS).toISOString() });
  const readLease = async () => {
    const bytes = await store.readState(LEASE);
    return { bytes, lease: parseLease(bytes) };
  };

  function held(): Lease {
    let renewing: Promise<unknown> = Promise.resolve();
    const renew = setInterval(() => {
      renewing = (async () => {
        const { lease } = await readLease();
        if (lease?.owner !== owner) {
          clearInterval(renew);
          warn(`the eviction lease was taken over by ${lease?.owner ?? "nobody"} while this replica's run lasted over ${LEASE_MS / 1000} s`);
          return;
        }
        await store.writeState(LEASE, leaseBody());
      })().catch((err) => warn(`cannot renew the eviction lease: ${(err as Error).message}`));
    }, RENEW_MS);
    renew.unref?.();
    return {
      async release() {
        clearInterval(renew);
        await renewing;
        if ((await readLease()).lease?.owner === owner) await store.removeState(LEASE);
      },
    };
  }

  return {
    owner,

    async acquire() {
      if (await store.createState(LEASE, leaseBody())) return held();
      const { bytes, lease } = await readLease();
      if (lease && lease.expires > now()) return null;
      // Expired (or unreadable): its holder died mid-run. Removed only if unchanged since read;
      // two replicas taking over at the same moment can still both remove and one re-create
      // between the read and the removal (S3 has no conditional delete): a window of one round trip.
      if (bytes) {
        warn(`taking over the eviction lease of ${lease?.owner ?? "an unreadable lease"}: it expired ${lease ? `${Math.round((now() - lease.expires) / 1000)} s ago` : ""}`.trim());
        const again = await store.readState(LEASE);
        if (!again || Buffer.compare(again, bytes) !== 0) return null;
        await store.removeState(LEASE);
      }
      return (await store.createState(LEASE, leaseBody())) ? held() : null;
    },

    async waitFree(ms) {
      const until = now() + ms;
      while (now() < until) {
        const { lease } = await readLease().catch(() => ({ lease: null }));
        if (!lease || lease.owner === owner || lease.expires <= now()) return;
        await Bun.sleep(WAIT_POLL_MS);
      }
    },

    async busyElsewhere() {
      const out = new Set<string>();
      for await (const name of store.listState(REPLICAS_DIR)) {
        if (name === `${owner}.json`) continue;
        const v = parse(await store.readState(`${REPLICAS_DIR}/${name}`).catch(() => null));
        if (typeof v?.at !== "number" || now() - v.at > FRESH_MS || !Array.isArray(v.digests)) continue;
        for (const d of v.digests.slice(0, MAX_DIGESTS)) if (typeof d === "string" && isDigest(d)) out.add(d);
      }
      return out;
    },

    publish(downloading) {
      let last = "";
      let writtenAt = -Infinity;
      let hasFile = false;
      let tick: Promise<void> | null = null;
      let failedAt = -Infinity;
      const update = async () => {
        const digests = [...downloading()].sort();
        const same = digests.join(" ") === last;
        if (!digests.length) {
          if (hasFile) await store.removeState(ownFile);
          hasFile = false;
          last = "";
          return;
        }
        if (same && now() - writtenAt < REFRESH_MS) return;
        await store.writeState(ownFile, enc({ owner, at: now(), digests }));
        last = digests.join(" ");
        writtenAt = now();
        hasFile = true;
      };
      const timer = setInterval(() => {
        // One update at a time: a slow store skips ticks rather than queueing them.
        tick ??= update().catch((err) => {
          if (now() - failedAt < 60_000) return;
          failedAt = now();
          warn(`cannot publish this replica's downloads (other replicas may evict them): ${(err as Error).message}`);
        }).finally(() => (tick = null));
      }, PUBLISH_CHECK_MS);
      timer.unref?.();
      return async () => {
        clearInterval(timer);
        await tick;
        await store.removeState(ownFile).catch(() => {});
      };
    },
  };
}
