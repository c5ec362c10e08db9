// A cold blob another replica downloads (it holds the blob's lease, flight-leases.ts), relayed to
// this replica's clients from the owner's internal endpoint: one stream per blob and replica, into
// a Download its clients join (relay.ts). When the owner cannot serve (gone, restarted, its
// download failed) the lease is taken over or followed to its new holder, and the relay resumes
// where it stopped; once the blob is stored it comes from the store.
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Target } from "../oci/reference.ts";
import { discardBody } from "../upstream/body.ts";
import type { CacheContext } from "./context.ts";
import { Download } from "./download.ts";
import { CacheError } from "./errors.ts";
import { FLIGHT_LEASE_MS, type FlightClaim } from "./flight-leases.ts";
import { relaySpool, relayStream, RESUMES } from "./relay.ts";

/** Another replica's download this replica follows: where it serves it, and the lease as read. */
export interface PeerFlight {
  peer: Extract<FlightClaim, { kind: "peer" }>;
}

/** Owners (or their successors) asked for one client's bytes before the client gets an error. */
const TRIES = 4;
/**
 * The longest a relay waits for the owner's object while the owner still holds its lease: the owner
 * uploads after its clients are served (up to s3.uploadTrail after its last byte; each part may
 * take up to 300 s).
 */
const OWNER_COMMIT_MAX_MS = 5 * 60_000;

export const isPeerFlight = (f: unknown): f is PeerFlight => typeof f === "object" && f !== null && "peer" in f;

/** What a retake found: this replica's own download, another owner, the store (null), or something else (a pass-through). */
export type Retaken = Download | PeerFlight | null | { passthrough: unknown };

/** The total size a 200 or 206 answer states. */
function totalOf(res: Response): number | null {
  const range = res.headers.get("content-range")?.match(/\/(\d+)$/);
  const n = Number(range ? range[1] : res.headers.get("content-length") ?? NaN);
  return Number.isSafeInteger(n) && n >= 0 ? n : null;
}

/** Relays this replica runs (never served to another replica: each follows the owner itself). */
const relays = new WeakSet<Download>();
export const isRelay = (d: Download) => relays.has(d);

export function peerSources(ctx: CacheContext, retake: (target: Target, digest: string, dead: PeerFlight | null) => Promise<Retaken>) {
  /** Where relayed blobs are spooled while their clients read them. */
  const dir = ctx.relayDir ?? join(tmpdir(), "ociregistry-relays");

  /** Bytes from `start` on from `first`, moving on to whoever has the blob whenever a source cannot serve. */
  async function open(target: Target, digest: string, first: Retaken, start: number): Promise<{ body: ReadableStream<Uint8Array>; size: number | null; peer: PeerFlight | null; via: Retaken }> {
    let f = first;
    for (let i = 0; i < TRIES; i++) {
      if (f === null) {
        const s = await ctx.store.statBlob(digest);
        if (!s) throw new CacheError("not-found", "blob", `${target.upstream}/${target.repository}@${digest} was removed from the store while it was asked for`);
        return { body: s.file.slice(start).stream(), size: s.size, peer: null, via: f };
      }
      if (f instanceof Download) {
        if (!f.error) return { body: f.stream(start, null), size: f.total, peer: null, via: f };
        f = await retake(target, digest, null);
        continue;
      }
      if (!isPeerFlight(f)) break;
      const res = await ctx.peers!.open(f.peer.url, target.upstream, digest, start, null).catch((err: Error) => {
        ctx.log.debug(`replica ${f && isPeerFlight(f) ? f.peer.url : ""} cannot serve ${digest}: ${err.message}`);
        return null;
      });
      if (res?.body && (res.status === 200 || res.status === 206)) return { body: res.body as ReadableStream<Uint8Array>, size: totalOf(res), peer: f, via: f };
      if (res) discardBody(res);
      ctx.log.info(`replica ${f.peer.url} cannot serve ${target.upstream}/${target.repository}@${digest}${res ? ` (HTTP ${res.status})` : ""}: taking over its download`);
      f = await retake(target, digest, f);
    }
    throw new CacheError("unreachable", "blob", `no replica could serve ${target.upstream}/${target.repository}@${digest}: the one downloading it failed and taking over failed ${TRIES} times`);
  }

  /**
   * What this replica's clients join for a blob `first` downloads: a relay Download fed by one
   * stream from the owner, or, when the owner could not serve and this replica took the download
   * over or the blob is stored meanwhile, that Download or null (the store).
   */
  async function relay(target: Target, digest: string, first: PeerFlight, on: { verified: (d: Download) => void; end: (d: Download) => void }): Promise<Download | null> {
    const opened = await open(target, digest, first, 0);
    if (!opened.peer) {
      void opened.body.cancel().catch(() => {});
      return opened.via instanceof Download ? opened.via : null;
    }
    let writer;
    let d: Download | null = null;
    let from: PeerFlight | null = opened.peer;
    try {
      writer = await relaySpool(dir, digest, opened.size, {
        stored: () => ctx.store.statBlob(digest), verified: () => d && on.verified(d), waitMs: FLIGHT_LEASE_MS, now: ctx.now,
        ownerBusy: async () => !!from && !!ctx.leases && (await ctx.leases.live(target.upstream, digest, from.peer.owner)),
        maxWaitMs: FLIGHT_LEASE_MS + OWNER_COMMIT_MAX_MS,
      });
    } catch (err) {
      void opened.body.cancel().catch(() => {});
      throw err;
    }
    const body = relayStream(opened.body, {
      digest, size: opened.size, idleTimeoutMs: ctx.pullTimeoutMs,
      resume: async (pos) => {
        const o = await open(target, digest, await retake(target, digest, from), pos);
        from = o.peer;
        return o.body;
      },
    });
    d = Download.start({
      digest, total: opened.size, writer, body,
      // Each source is held to the idle timeout by the relay; this bounds the resumes together.
      idleTimeoutMs: ctx.pullTimeoutMs * (RESUMES + 2),
      onEnd: on.end,
    });
    relays.add(d);
    return d;
  }

  return { relay };
}
