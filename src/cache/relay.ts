// A blob another replica is downloading, relayed ONCE per replica: one stream from the owner's
// internal endpoint that resumes where it stopped from whoever has the blob now when it breaks (the
// owner killed, its upstream failed: this replica taking the download over, a new owner, the store),
// written to a local spool file that checks the size and the digest. A Download over the two hands
// the bytes to every client of this replica, last byte held until the digest matched: one hash and
// one internal stream per blob and replica, however many clients. The owner stores the blob; the
// spool never uploads a second copy, it only waits for the owner's object to appear.
import { openScratch } from "../store/scratch.ts";
import type { BlobWriter, StoredBlob } from "../store/types.ts";
import { verifyingWriter } from "../store/writer.ts";
import { NotKept } from "./download.ts";
import { timedReader, type TimedReader } from "./timed-read.ts";

/** Sources tried after the first one broke. */
export const RESUMES = 3;

export interface RelayOptions {
  digest: string;
  /** The blob's size when known: a source that ends before it broke. */
  size: number | null;
  idleTimeoutMs: number;
  /** A source for bytes [pos, end of the blob] now that the last one broke. */
  resume: (pos: number) => Promise<ReadableStream<Uint8Array>>;
}

/** The whole blob from `first`, moving on to `resume`'s sources when one fails or ends early; not checked here (the spool is). */
export function relayStream(first: ReadableStream<Uint8Array>, o: RelayOptions): ReadableStream<Uint8Array> {
  let reader: TimedReader = timedReader(first, o.idleTimeoutMs);
  let pos = 0;
  let resumes = RESUMES;

  /** The next chunk, resuming from another source when this one failed or ended early. */
  async function next(): Promise<Uint8Array | null> {
    for (;;) {
      let failure: unknown;
      try {
        const chunk = await reader.next();
        if (chunk) return chunk;
        if (o.size === null || pos >= o.size) return null;
        failure = new Error(`the source of ${o.digest} ended at byte ${pos} of ${o.size}`);
      } catch (err) {
        failure = err;
      }
      reader.cancel();
      if (resumes-- <= 0) throw failure;
      reader = timedReader(await o.resume(pos), o.idleTimeoutMs);
    }
  }

  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const chunk = await next();
        if (!chunk) return controller.close();
        // A source that sends past the size: the spool refuses the excess (size known), or the digest does.
        pos += chunk.byteLength;
        controller.enqueue(chunk);
      } catch (err) {
        reader.cancel();
        controller.error(err);
      }
    },
    cancel() {
      reader.cancel();
    },
  }, { highWaterMark: 0 });
}

/**
 * Where a relayed blob's bytes go on this replica: a local scratch file (in `dir`) that joined
 * readers read back, checked against the size and the digest (the one hash). Its commit stores
 * nothing: it says the bytes are verified, waits for the owner's object (`stored`) — `waitMs`, and
 * longer while `ownerBusy` (the owner still renews its lease: its upload runs), never past
 * `maxWaitMs` — then serves late readers from it; NotKept when it did not appear.
 */
export async function relaySpool(dir: string, digest: string, size: number | null, o: {
  stored: () => Promise<StoredBlob | null>;
  /** The bytes matched: from now on new clients should find the owner's object, not this relay. */
  verified: () => void;
  waitMs: number;
  /** The owner still holds its lease (it uploads the blob after its clients are served). */
  ownerBusy?: () => Promise<boolean>;
  /** The longest wait however busy the owner says it is (default `waitMs`). */
  maxWaitMs?: number;
  now: () => number;
}): Promise<BlobWriter> {
  const file = await openScratch(dir, 0o600, `the relay of ${digest}`);
  const spool = verifyingWriter(digest, size ?? undefined, {
    write: async (chunk, position) => file.write(chunk, position),
    readAt: (position, into) => file.readAt(position, into),
    publish: async () => {},
    drop: () => file.discard(),
    release: () => file.discard(),
  });
  return {
    ...spool,
    get written() {
      return spool.written;
    },
    async commit() {
      await spool.verify();
      o.verified();
      // The owner commits once its last byte went out and its clients are served (its upload may
      // wait for them, then run). Not found in time: the spool stays verified (its readers finish
      // from it), abort drops it.
      const started = o.now();
      const until = started + o.waitMs;
      const cap = started + Math.max(o.waitMs, o.maxWaitMs ?? o.waitMs);
      for (;; await Bun.sleep(200)) {
        const s = await o.stored();
        if (s) {
          // Readers that join as the spool is released read the owner's object.
          file.published(async (p, n) => new Uint8Array(await s.file.slice(p, p + n).arrayBuffer()));
          return spool.commit();
        }
        const t = o.now();
        if (t >= cap || (t >= until && !(await o.ownerBusy?.().catch(() => false)))) {
          throw new NotKept(`${digest} was relayed from the replica downloading it but did not appear in the store within ${Math.round((t - started) / 1000)} s`);
        }
      }
    },
  };
}
