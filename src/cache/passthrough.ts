// A blob sent from the upstream to one client without being stored, when the store has no room
// (pass-through). The same rules as a stored download: the idle timeout and minimum rate, the
// size the manifest declared, and no response looks complete before its bytes matched the
// digest (the last chunk is held back until they did; on a mismatch the client sees an error).
import { createDigester, parseDigest } from "../oci/digest.ts";
import type { TransferRate } from "./download.ts";
import { timedReader } from "./timed-read.ts";

export function passThrough(body: ReadableStream<Uint8Array>, opts: {
  digest: string;
  size: number | null;
  idleTimeoutMs: number;
  minRate?: TransferRate;
  onEnd?: (bytes: number, ok: boolean) => void;
}): ReadableStream<Uint8Array> {
  const reader = timedReader(body, opts.idleTimeoutMs, opts.minRate);
  const hash = createDigester(parseDigest(opts.digest)!.algorithm);
  let held: Uint8Array | null = null;
  let total = 0;
  let ended = false;
  const end = (ok: boolean) => {
    if (!ended) (ended = true), opts.onEnd?.(total, ok);
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        for (;;) {
          const chunk = await reader.next();
          if (!chunk) {
            if (opts.size !== null && total !== opts.size) throw new Error(`upstream sent ${total} bytes for ${opts.digest}, ${opts.size} expected`);
            if (hash.digest() !== opts.digest) throw new Error(`upstream bytes do not match ${opts.digest}`);
            if (held) controller.enqueue(held);
            controller.close();
            end(true);
            return;
          }
          total += chunk.byteLength;
          if (opts.size !== null && total > opts.size) throw new Error(`upstream sent more than the ${opts.size} bytes declared for ${opts.digest}`);
          hash.update(chunk);
          const out = held;
          held = chunk;
          if (out) {
            controller.enqueue(out);
            return;
          }
        }
      } catch (err) {
        reader.cancel();
        end(false);
        controller.error(err);
      }
    },
    cancel() {
      reader.cancel();
      end(false);
    },
  }, { highWaterMark: 0 });
}
