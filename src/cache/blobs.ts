// Blobs through the cache: stored blobs straight from the store (the kernel sends the file), cold
// blobs downloaded once and streamed to every client that asks while the download runs. A
// download is keyed by (upstream, digest): until its bytes are verified and committed they are
// only that upstream's word, and never handed to a client of another upstream.
import type { StoredBlob } from "../store/types.ts";
import type { Target } from "../oci/reference.ts";
import { contentLength, discardBody } from "../upstream/body.ts";
import type { CacheContext, Served } from "./context.ts";
import { CacheError, fromUpstream, fromUpstreamStatus, storeFull } from "./errors.ts";
import { Download } from "./download.ts";
import { passThrough } from "./passthrough.ts";
import type { HeldFlight } from "./flight-leases.ts";
import { isPeerFlight, isRelay, peerSources, type PeerFlight } from "./peer-source.ts";

/** What a decided transfer is: a download into the store others may join, or one client's pass-through. */
type PassThrough = { passthrough: BlobSource & { kind: "passthrough" }; claimed: boolean };
type Flight = Download | PassThrough;

/** What the handler needs to answer a blob request. */
export type BlobSource =
  | ({ kind: "stored" } & StoredBlob)
  | { kind: "download"; size: number | null; download: Download }
  /** Size known from an upstream HEAD; nothing downloaded. */
  | { kind: "remote"; size: number | null }
  /** The store has no room: the upstream's bytes for this client only, checked against the digest, not kept. */
  | { kind: "passthrough"; size: number | null; body: ReadableStream<Uint8Array> };

export interface BlobGetOptions {
  sizeOnly?: boolean;
  served?: Served;
}

/** The cache's blobs: what clients pull, what a pull into the store makes sure of, and what runs. */
export interface Blobs {
  /** Where a blob's bytes come from. `sizeOnly` (a HEAD) asks upstream for the size and downloads nothing; `served` learns how it was served. */
  get(target: Target, digest: string, opts?: BlobGetOptions): Promise<BlobSource>;
  /** Makes sure a blob is in the store, downloading it if needed; returns the bytes this call downloaded. */
  ensure(target: Target, digest: string): Promise<number>;
  /** Downloads in progress, for shutdown. */
  active(): Promise<Download[]>;
  /** Digests being downloaded now (eviction keeps the images that need them). */
  downloading(): Set<string>;
  /**
   * What this replica can serve another one (the internal endpoint): its own running download of
   * (upstream, digest), else the stored blob; null otherwise. Never starts or relays a download.
   */
  local(upstream: string, digest: string): Promise<BlobSource | null>;
}

export function createBlobs(ctx: CacheContext): Blobs {
  /**
   * One entry per (upstream, digest) from the moment a download is decided until it ends, set
   * and read without an await in between: two requests can never both start one. Resolves to
   * null when the blob turned out to be stored already. On a shared store an entry may be a relay
   * of another replica's download (peer-source.ts): this replica's clients share it too.
   */
  const flights = new Map<string, Promise<Flight | null>>();
  /** The entry each running Download was registered under: it ends only its own entry. */
  const entries = new WeakMap<Download, Promise<Flight | null>>();
  // A relay whose owner cannot serve decides again (taking the lease over): what this replica then
  // downloads itself is what its clients join and what it serves the other replicas.
  const peers = peerSources(ctx, (target, digest, dead) => {
    const key = `${target.upstream} ${digest}`;
    const p = decide(key, target, digest, dead ?? undefined);
    // Registered at once: a replica following this one's new lease may ask before `p` resolves.
    const before = flights.get(key) ?? Promise.resolve(null);
    register(key, p.then((f) => (f instanceof Download ? f : before), () => before));
    return p;
  });

  /**
   * Entries that ended so far: a look at the store taken when this was `n` still holds for a key
   * with no entry while it is `n` (no download of this process committed since). Other processes'
   * commits are the leases' to find (decide).
   */
  let endedCount = 0;
  const forget = (key: string, p: Promise<Flight | null>) => {
    if (flights.get(key) !== p) return;
    flights.delete(key);
    endedCount++;
  };

  /** Makes `p` the entry for `key`; it is dropped once it resolves to something nobody joins. */
  function register(key: string, p: Promise<Flight | null>) {
    flights.set(key, p);
    const drop = () => forget(key, p);
    // A pass-through is one client's: nobody joins it.
    p.then((f) => {
      if (!(f instanceof Download)) return drop();
      entries.set(f, p);
      if (f.done || f.error) drop();
    }, drop);
  }

  /** A Download ended: its entry goes (not one registered after it). */
  function ended(key: string, d: Download) {
    const p = entries.get(d);
    if (p) forget(key, p);
  }

  async function openUpstream(target: Target, digest: string, method: "GET" | "HEAD"): Promise<Response> {
    let res: Response;
    try {
      res = await ctx.upstreams.request(target.upstream, { method, repository: target.repository, path: `blobs/${digest}` });
    } catch (err) {
      throw fromUpstream(err, "blob");
    }
    if (res.status === 200) return res;
    discardBody(res);
    throw fromUpstreamStatus(res.status, target.upstream, `${target.upstream}/${target.repository}@${digest}`, "blob");
  }

  /** The upstream's answer streamed to one client, checked, not kept (the store has no room). */
  async function openPassThrough(target: Target, digest: string, res: Response, size?: number | null): Promise<PassThrough> {
    const total = size !== undefined ? size : heldSize(target, digest, res);
    ctx.quota.passedThrough(`${target.upstream}/${target.repository}@${digest}`);
    ctx.observe.downloadStarted?.();
    const body = passThrough(res.body ?? new ReadableStream({ start: (c) => c.close() }), {
      digest, size: total, idleTimeoutMs: ctx.pullTimeoutMs, minRate: ctx.minTransferRate,
      onEnd: (bytes, ok) => ctx.observe.downloadEnded?.(bytes, ok),
    });
    return { passthrough: { kind: "passthrough", size: total, body }, claimed: false };
  }

  /** The size a blob's bytes are held to: announced, else declared by its upstream's manifest; both must agree. */
  function heldSize(target: Target, digest: string, res: Response): number | null {
    const announced = contentLength(res);
    const declared = ctx.declaredSizes.get(`${target.upstream} ${digest}`) ?? null;
    if (announced !== null && declared !== null && announced !== declared) {
      discardBody(res);
      throw new CacheError("invalid", "blob", `upstream ${target.upstream} announced ${announced} bytes for ${digest}, its manifest declares ${declared}`);
    }
    // The download is held to the declared size even when the upstream announces none.
    return announced ?? declared;
  }

  async function startDownload(key: string, target: Target, digest: string, lease: HeldFlight | null): Promise<Flight> {
    const res = await openUpstream(target, digest, "GET");
    const total = heldSize(target, digest, res);
    const where = `${target.upstream}/${target.repository}@${digest}`;
    if (ctx.passingThrough.has(key) || !(await ctx.quota.room(total ?? 0))) return openPassThrough(target, digest, res, total);
    let writer;
    try {
      writer = await ctx.store.createBlobWriter(digest, { size: total ?? undefined });
    } catch (err) {
      // The body holds an upstream slot until it is read or dropped.
      discardBody(res);
      throw err;
    }
    ctx.log.debug(`downloading ${target.upstream}/${target.repository}@${digest}${total !== null ? ` (${total} bytes)` : ""}`);
    const started = ctx.now();
    ctx.observe.downloadStarted?.();
    return Download.start({
      digest, total, writer, body: res.body ?? new ReadableStream({ start: (c) => c.close() }),
      idleTimeoutMs: ctx.pullTimeoutMs, minRate: ctx.minTransferRate,
      onEnd: (d) => {
        ended(key, d);
        // After the commit: a replica that finds no lease finds the blob.
        void lease?.release().catch((err) => ctx.log.warn(`cannot release the download lease of ${digest}: ${(err as Error).message}`));
        if (!d.error && !d.stored) ctx.quota.passedThrough(where);
        // Stored and verified: the declared size has served its purpose.
        if (d.stored) ctx.declaredSizes.delete(`${target.upstream} ${digest}`);
        ctx.observe.downloadEnded?.(d.written, !d.error);
        if (d.error) ctx.log.warn(`download of ${target.upstream}/${target.repository}@${digest} failed: ${d.error.message}`);
        else ctx.log.info(`downloaded ${target.upstream}/${target.repository}@${digest}: ${d.written} bytes in ${ctx.now() - started} ms`);
      },
    });
  }

  /**
   * Who downloads a blob on a shared store: this replica under a lease, or the replica holding it
   * (followed); `dead` is an owner that could not serve, whose lease is taken over.
   */
  async function decide(key: string, target: Target, digest: string, dead?: PeerFlight): Promise<Flight | PeerFlight | null> {
    if (!ctx.leases) return startDownload(key, target, digest, null);
    const leases = ctx.leases;
    const claim = await (dead ? leases.takeOver(target.upstream, digest, dead.peer.seen) : leases.claim(target.upstream, digest)).catch((err: Error) => {
      ctx.log.warn(`cannot read or take the download lease of ${digest} (downloading it without one): ${err.message}`);
      return { kind: "alone" as const };
    });
    if (claim.kind === "peer") return { peer: claim };
    const lease = claim.kind === "owner" ? claim.lease : null;
    try {
      // Stored between our look and our lease (its owner committed, then released): nothing to fetch.
      if (lease && (await ctx.store.statBlob(digest))) {
        void lease.release().catch(() => {});
        return null;
      }
      const f = await startDownload(key, target, digest, lease);
      if (!(f instanceof Download)) void lease?.release().catch(() => {});
      return f;
    } catch (err) {
      void lease?.release().catch(() => {});
      throw err;
    }
  }

  /** The relay of another replica's download ended. */
  function relayEnded(key: string, where: string, d: Download) {
    ended(key, d);
    if (d.error) ctx.log.warn(`relay of ${where} from the replica downloading it failed: ${d.error.message}`);
    else ctx.log.debug(`relayed ${where} from the replica downloading it: ${d.written} bytes`);
  }

  /**
   * The running download (or relay) for (upstream, digest), starting one unless the blob is stored
   * meanwhile. `looked`: endedCount when the caller found the blob absent from the store; while it
   * is unchanged, no local download committed since, and a shared store (S3: a round trip of 5-25
   * ms under load) is not asked again. Another replica's commit is found by decide's look after the
   * lease; replicas without peers may download a blob one committed a moment ago again (the same
   * verified bytes). A directory store is asked again: a stat costs nothing there.
   */
  function flight(target: Target, digest: string, looked?: number): Promise<Flight | null> {
    const key = `${target.upstream} ${digest}`;
    let p = flights.get(key);
    if (p) ctx.observe.joined?.();
    else {
      p = (async () => {
        if (!(ctx.store.shared && looked === endedCount) && (await ctx.store.statBlob(digest))) return null;
        const f = await decide(key, target, digest);
        if (!isPeerFlight(f)) return f;
        const where = `${target.upstream}/${target.repository}@${digest}`;
        // Verified, it waits for the owner's commit: clients from then on look for the stored blob
        // (a relay that stayed joinable would hide a blob removed meanwhile).
        return peers.relay(target, digest, f, { verified: (d) => ended(key, d), end: (d) => relayEnded(key, where, d) });
      })();
      register(key, p);
    }
    return p;
  }

  async function storedSource(target: Target, digest: string): Promise<BlobSource | null> {
    // A blob a manifest of its upstream declares, not downloaded here yet, is most likely cold (a
    // pull's config and layers): both looks go at once, one store round trip before the download
    // instead of two (on S3 each is 1-25 ms). Others look as a manifest only when not a blob.
    const likelyCold = ctx.declaredSizes.has(`${target.upstream} ${digest}`);
    const asManifest = likelyCold ? ctx.store.readManifest(digest) : null;
    asManifest?.catch(() => {});
    const stored = await ctx.store.statBlob(digest);
    if (stored) return { kind: "stored", ...stored };
    // Manifests are blobs too in the distribution API (OCI layout tools fetch them this way).
    const manifest = await (asManifest ?? ctx.store.readManifest(digest));
    if (manifest) return { kind: "stored", size: manifest.byteLength, file: new Blob([manifest as Uint8Array<ArrayBuffer>]) };
    return null;
  }

  /** Where a blob's bytes come from (see Blobs.get). */
  async function get(target: Target, digest: string, opts: BlobGetOptions = {}): Promise<BlobSource> {
    const { served } = opts;
    const running = flights.get(`${target.upstream} ${digest}`);
    const joined = running ? await running.catch(() => null) : null;
    if (joined instanceof Download && !joined.done) {
      ctx.observe.miss?.("blob");
      ctx.observe.joined?.();
      if (served) served.cache = "miss";
      return { kind: "download", size: joined.total, download: joined };
    }
    const looked = endedCount;
    const stored = await storedSource(target, digest);
    if (stored) {
      ctx.observe.hit?.("blob");
      if (served) served.cache = "hit";
      return stored;
    }
    ctx.observe.miss?.("blob");
    if (served) served.cache = "miss";
    if (ctx.airGapped) {
      throw new CacheError("air-gapped", "blob", `${target.upstream}/${target.repository}@${digest} is not cached and the cache is air-gapped`);
    }
    if (opts.sizeOnly) {
      const res = await openUpstream(target, digest, "HEAD");
      discardBody(res);
      return { kind: "remote", size: contentLength(res) };
    }
    const d = await flight(target, digest, looked);
    if (d && !(d instanceof Download)) {
      // A pass-through is one client's stream: a request that joined it while it was being
      // decided gets one of its own (the store had no room a moment ago).
      if (served) served.cache = "passthrough";
      if (!d.claimed) {
        d.claimed = true;
        return d.passthrough;
      }
      return (await openPassThrough(target, digest, await openUpstream(target, digest, "GET"))).passthrough;
    }
    if (!d || d.done) {
      const s = await ctx.store.statBlob(digest);
      if (s) return { kind: "stored", ...s };
    }
    if (!d) throw new CacheError("not-found", "blob", `${target.upstream}/${target.repository}@${digest} was removed from the store while it was asked for`);
    return { kind: "download", size: d.total, download: d };
  }

  return {
    get,
    async ensure(target: Target, digest: string): Promise<number> {
      // This store path's own get, never a wrapper's: what ensure makes sure of is the store.
      const source = await get(target, digest);
      if (source.kind === "passthrough") {
        void source.body.cancel().catch(() => {});
        throw storeFull("blob", `${target.upstream}/${target.repository}@${digest}`);
      }
      if (source.kind !== "download") return 0;
      const d = source.download;
      const where = `${target.upstream}/${target.repository}@${digest}`;
      await d.settled();
      if (d.error) throw new CacheError("unreachable", "blob", `download of ${where}${isRelay(d) ? " by another replica" : ""} failed: ${d.error.message}`);
      // A relay is kept by its owner: it commits once the owner's object is there (NotKept otherwise).
      if (!d.stored && isRelay(d)) throw new CacheError("unreachable", "blob", `${where} was downloaded by another replica but did not appear in the store`);
      if (!d.stored) throw storeFull("blob", where);
      return isRelay(d) ? 0 : d.written;
    },
    async active(): Promise<Download[]> {
      const all = await Promise.all([...flights.values()].map((p) => p.catch(() => null)));
      return all.filter((d): d is Download => d instanceof Download && !d.done && !d.error);
    },
    async local(upstream, digest) {
      const running = flights.get(`${upstream} ${digest}`);
      const d = running ? await running.catch(() => null) : null;
      // Never a relay: each replica follows the owner itself.
      if (d instanceof Download && !d.error && !d.done && !isRelay(d)) return { kind: "download", size: d.total, download: d };
      const s = await ctx.store.statBlob(digest);
      return s ? { kind: "stored", ...s } : null;
    },
    downloading(): Set<string> {
      const out = new Set<string>();
      for (const key of flights.keys()) out.add(key.slice(key.indexOf(" ") + 1));
      return out;
    },
  };
}
