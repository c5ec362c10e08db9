// One upstream fetch per blob across replicas on a shared store: before a replica downloads a cold
// blob it creates `state/flights/<key>.json` ({owner, url, expires}) only if absent (S3
// `If-None-Match: *`). The replica that created it downloads, renewing it while the download
// runs and removing it once the blob is committed (or the download failed); the others stream
// from the owner's internal endpoint (`url`). A lease past its expiry, or whose owner cannot
// serve the blob (gone, restarted, failed), is taken over: a lease never blocks a blob for longer
// than its expiry.
import { createHash, randomBytes } from "node:crypto";
import type { Store } from "../store/types.ts";

export const FLIGHTS_DIR = "flights";
/** A lease not renewed for this long belongs to a replica that died mid-download. */
export const FLIGHT_LEASE_MS = 15_000;
const RENEW_MS = 5_000;
/** Rounds of create / read / take over before a claim gives up and the replica downloads alone. */
const CLAIM_ROUNDS = 4;

/** A lease this replica holds: its download is the one the others follow. */
export interface HeldFlight {
  /** Stops renewing and removes the lease if it is still ours. */
  release(): Promise<void>;
}

/** What a claim decided: this replica downloads, or another one does and serves it at `url`. */
export type FlightClaim =
  | { kind: "owner"; lease: HeldFlight }
  | { kind: "peer"; url: string; owner: string; seen: Uint8Array }
  /** No lease could be settled (a store that keeps changing under us): download without one. */
  | { kind: "alone" };

export interface FlightLeases {
  /** Takes the lease for (upstream, digest), or names the live owner's address. */
  claim(upstream: string, digest: string): Promise<FlightClaim>;
  /** The owner `seen` names could not serve: its lease is replaced by ours if unchanged since, else the new holder is named. */
  takeOver(upstream: string, digest: string, seen: Uint8Array): Promise<FlightClaim>;
  /** Whether `owner` still holds the lease, unexpired: it renews it until its commit (the upload) ended. */
  live(upstream: string, digest: string, owner: string): Promise<boolean>;
}

interface LeaseBody { owner: string; url: string; expires: number }

function parseLease(bytes: Uint8Array | null): LeaseBody | null {
  if (!bytes) return null;
  try {
    const v = JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>;
    const expires = typeof v.expires === "string" ? Date.parse(v.expires) : NaN;
    if (typeof v.owner !== "string" || typeof v.url !== "string" || !Number.isFinite(expires)) return null;
    return { owner: v.owner, url: v.url, expires };
  } catch {
    return null;
  }
}

/** The lease's name: a hash, since upstream names hold characters state names may not. */
export function flightName(upstream: string, digest: string): string {
  return `${FLIGHTS_DIR}/${createHash("sha256").update(`${upstream} ${digest}`).digest("hex").slice(0, 40)}.json`;
}

export function createFlightLeases(store: Store, o: {
  /** This replica's internal address, as the others reach it. */
  self: () => string;
  now: () => number;
  warn: (m: string) => void;
}): FlightLeases {
  const owner = randomBytes(8).toString("hex");
  const body = () => new TextEncoder().encode(`${JSON.stringify({ owner, url: o.self(), expires: new Date(o.now() + FLIGHT_LEASE_MS).toISOString() })}\n`);

  function held(name: string): HeldFlight {
    let renewing: Promise<unknown> = Promise.resolve();
    let stopped = false;
    const timer = setInterval(() => {
      renewing = (async () => {
        if (parseLease(await store.readState(name))?.owner !== owner) {
          clearInterval(timer);
          if (!stopped) o.warn(`the download lease ${name} was taken over while this replica still downloads (it could not renew it for ${FLIGHT_LEASE_MS / 1000} s)`);
          return;
        }
        if (!stopped) await store.writeState(name, body());
      })().catch((err) => o.warn(`cannot renew the download lease ${name}: ${(err as Error).message}`));
    }, RENEW_MS);
    timer.unref?.();
    return {
      async release() {
        stopped = true;
        clearInterval(timer);
        await renewing;
        if (parseLease(await store.readState(name))?.owner === owner) await store.removeState(name);
      },
    };
  }

  /** Creates the lease, or reads the one there: a live one of another replica is followed; a stale one is replaced. */
  async function settle(name: string, stale: Uint8Array | null): Promise<FlightClaim> {
    for (let round = 0; round < CLAIM_ROUNDS; round++) {
      if (!stale && (await store.createState(name, body()))) return { kind: "owner", lease: held(name) };
      const bytes = await store.readState(name);
      if (!bytes) {
        stale = null; // Released between our create and our read: try again.
        continue;
      }
      const lease = parseLease(bytes);
      const same = stale !== null && Buffer.compare(bytes, stale) === 0;
      if (lease && !same && lease.owner !== owner && lease.expires > o.now()) return { kind: "peer", url: lease.url, owner: lease.owner, seen: bytes };
      // Stale: expired, unreadable, the one whose owner could not serve, or ours from a failed release.
      // Removed only if unchanged since read (S3 has no conditional delete: a window of one round trip).
      const again = await store.readState(name);
      if (again && Buffer.compare(again, bytes) === 0) await store.removeState(name);
      stale = null;
    }
    return { kind: "alone" };
  }

  return {
    claim: (upstream, digest) => settle(flightName(upstream, digest), null),
    takeOver: (upstream, digest, seen) => settle(flightName(upstream, digest), seen),
    async live(upstream, digest, holder) {
      const lease = parseLease(await store.readState(flightName(upstream, digest)));
      return lease !== null && lease.owner === holder && lease.expires > o.now();
    },
  };
}
