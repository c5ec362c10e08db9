// A blob another replica is downloading, streamed to one client of this replica: bytes come from
// the owner's internal endpoint, and when that source breaks (the owner killed, its upstream
// failed) the stream resumes where it stopped from whoever has the blob now (this replica taking
// the download over, a new owner, or the store). A whole blob is checked against its digest here
// too, its last chunk held until it matched, so a lying or broken peer never looks complete.
import { createDigester, parseDigest } from "../oci/digest.ts";
import { timedReader, type TimedReader } from "./timed-read.ts";

/** Sources tried after the first one broke, per client stream. */
const RESUMES = 3;

export interface RelayOptions {
  digest: string;
  /** First byte and last byte (inclusive; null: to the end) this client asked for. */
  start: number;
  end: number | null;
  /** The blob's size when known: a source that ends before it broke. */
  size: number | null;
  idleTimeoutMs: number;
  /** A source for bytes [pos, end] now that the last one broke. */
  resume: (pos: number) => Promise<ReadableStream<Uint8Array>>;
}

/** `first`: the source opened already, or how to open it on the first read. */
export function relayStream(first: ReadableStream<Uint8Array> | (() => Promise<ReadableStream<Uint8Array>>), o: RelayOptions): ReadableStream<Uint8Array> {
  let reader: TimedReader | null = typeof first === "function" ? null : timedReader(first, o.idleTimeoutMs);
  let pos = o.start;
  let resumes = RESUMES;
  const whole = o.start === 0 && o.end === null;
  const hash = whole ? createDigester(parseDigest(o.digest)!.algorithm) : null;
  const stop = o.end !== null ? o.end + 1 : o.size;
  let held: Uint8Array | null = null;

  /** The next chunk, resuming from another source when this one failed or ended early. */
  async function next(): Promise<Uint8Array | null> {
    reader ??= timedReader(await (first as () => Promise<ReadableStream<Uint8Array>>)(), o.idleTimeoutMs);
    for (;;) {
      let failure: unknown;
      try {
        const chunk = await reader.next();
        if (chunk) return chunk;
        if (stop === null || pos >= stop) return null;
        failure = new Error(`the source of ${o.digest} ended at byte ${pos} of ${stop}`);
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
        for (;;) {
          const chunk = await next();
          if (!chunk) {
            if (hash) {
              if (o.size !== null && pos !== o.size) throw new Error(`got ${pos} bytes of ${o.digest} from the replica downloading it, ${o.size} expected`);
              if (hash.digest() !== o.digest) throw new Error(`bytes from the replica downloading ${o.digest} do not match it`);
            }
            if (held) controller.enqueue(held);
            controller.close();
            return;
          }
          const bytes = stop !== null && pos + chunk.byteLength > stop ? chunk.subarray(0, stop - pos) : chunk;
          pos += bytes.byteLength;
          if (!hash) {
            controller.enqueue(bytes);
            return;
          }
          hash.update(bytes);
          const out = held;
          held = bytes;
          if (out) {
            controller.enqueue(out);
            return;
          }
        }
      } catch (err) {
        reader?.cancel();
        controller.error(err);
      }
    },
    cancel() {
      reader?.cancel();
    },
  }, { highWaterMark: 0 });
}
