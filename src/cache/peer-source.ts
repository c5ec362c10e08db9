// A cold blob another replica downloads (it holds the blob's lease, flight-leases.ts), served to
// this replica's clients from the owner's internal endpoint. When the owner cannot serve (gone,
// restarted, its download failed) the lease is taken over or followed to its new holder, and a
// client's stream resumes where it stopped (relay.ts); once the blob is stored it comes from the store.
import type { Target } from "../oci/reference.ts";
import { discardBody } from "../upstream/body.ts";
import type { CacheContext } from "./context.ts";
import { Download } from "./download.ts";
import { CacheError } from "./errors.ts";
import type { FlightClaim } from "./flight-leases.ts";
import { relayStream } from "./relay.ts";

/** Another replica's download this replica follows: where it serves it, and the lease as read. */
export interface PeerFlight {
  peer: Extract<FlightClaim, { kind: "peer" }>;
  /** Followed without asking the store again until then (the lease's own expiry at the latest). */
  until: number;
}

/** Owners (or their successors) asked for one client's bytes before the client gets an error. */
const TRIES = 4;

export const isPeerFlight = (f: unknown): f is PeerFlight => typeof f === "object" && f !== null && "peer" in f;

/** What a retake found: this replica's own download, another owner, the store (null), or something else (a pass-through). */
export type Retaken = Download | PeerFlight | null | { passthrough: unknown };

/** A blob some replica downloads, streamed to this replica's clients (BlobSource "relay"). */
export interface RelaySource {
  kind: "relay";
  size: number | null;
  stream(start: number, end: number | null): ReadableStream<Uint8Array>;
}

/** The total size a 200 or 206 answer states. */
function totalOf(res: Response): number | null {
  const range = res.headers.get("content-range")?.match(/\/(\d+)$/);
  const n = Number(range ? range[1] : res.headers.get("content-length") ?? NaN);
  return Number.isSafeInteger(n) && n >= 0 ? n : null;
}

export function peerSources(ctx: CacheContext, retake: (target: Target, digest: string, dead: PeerFlight | null) => Promise<Retaken>) {
  /** Bytes [start, end] from `first`, moving on to whoever has the blob whenever a source cannot serve. */
  async function open(target: Target, digest: string, first: Retaken, start: number, end: number | null): Promise<{ body: ReadableStream<Uint8Array>; size: number | null; peer: PeerFlight | null; via: Retaken }> {
    let f = first;
    for (let i = 0; i < TRIES; i++) {
      if (f === null) {
        const s = await ctx.store.statBlob(digest);
        if (!s) throw new CacheError("not-found", "blob", `${target.upstream}/${target.repository}@${digest} was removed from the store while it was asked for`);
        return { body: (end === null ? s.file.slice(start) : s.file.slice(start, end + 1)).stream(), size: s.size, peer: null, via: f };
      }
      if (f instanceof Download) {
        if (!f.error) return { body: f.stream(start, end), size: f.total, peer: null, via: f };
        f = await retake(target, digest, null);
        continue;
      }
      if (!isPeerFlight(f)) break;
      const res = await ctx.peers!.open(f.peer.url, target.upstream, digest, start, end).catch((err: Error) => {
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
   * The source a client of this replica gets for a blob `first` downloads: a relay from the
   * owner, or, when the owner could not serve and this replica took the download over or the blob
   * is stored meanwhile, that Download or null (the store).
   */
  async function relay(target: Target, digest: string, first: PeerFlight): Promise<RelaySource | Download | null> {
    const opened = await open(target, digest, first, 0, null);
    if (!opened.peer) {
      void opened.body.cancel().catch(() => {});
      return opened.via instanceof Download ? opened.via : null;
    }
    let spare: ReadableStream<Uint8Array> | null = opened.body;
    // The whole-blob answer opened for the size is one client's stream; unused (a Range, a refusal) it is closed.
    const drop = setTimeout(() => void spare?.cancel().catch(() => {}), ctx.pullTimeoutMs);
    drop.unref?.();
    const size = opened.size;
    const owner = opened.peer;
    return {
      kind: "relay",
      size,
      stream(start, end) {
        let from: Retaken = owner;
        const whole = spare && start === 0 && end === null ? spare : null;
        if (!whole) void spare?.cancel().catch(() => {});
        spare = null;
        clearTimeout(drop);
        const reopen = async (next: Retaken, pos: number) => {
          const o = await open(target, digest, next, pos, end);
          from = o.peer;
          return o.body;
        };
        return relayStream(whole ?? (() => reopen(owner, start)), {
          digest, start, end, size, idleTimeoutMs: ctx.pullTimeoutMs,
          resume: async (pos) => reopen(await retake(target, digest, isPeerFlight(from) ? from : null), pos),
        });
      },
    };
  }

  return { relay };
}
