// One upstream blob download shared by every client that asks for it: bytes go into the store's
// blob writer while any number of readers stream them back from it, each from its own offset.
// Readers never see the final byte (of the blob, or of their range) before the store has verified
// the whole blob against its digest, so a failed or lying download never looks complete.
import type { BlobWriter } from "../store/types.ts";
import { isStoreFull } from "../store/usage.ts";
import { SharedBytes, type MemoryBudget } from "./shared-bytes.ts";
import { timedReader } from "./timed-read.ts";

/** The longest readers at the front wait for a block to fill before they get what there is. */
const BATCH_MS = 2;

/** The slowest an upstream body may be: fewer bytes than this over a whole window end it. */
export interface TransferRate {
  bytesPerSecond: number;
  windowMs: number;
}

/**
 * A writer's commit found the verified bytes are not to be kept by it (a relay whose owner did not
 * store the blob in time): like a full store, they still reach every reader, and nothing is stored.
 */
export class NotKept extends Error {
  override name = "NotKept";
}

export class Download {
  done = false;
  /** The whole blob matched its digest: readers may have the last byte (the store may still be committing it). */
  verified = false;
  error: Error | null = null;
  /** False when the store had no room (or a relay's owner did not store it): the bytes went to the readers only. */
  stored = true;
  private aborted: Error | null = null;
  private readers = 0;
  private released = false;
  private wake: Array<() => void> = [];
  private cancelRead?: () => void;
  private batch?: Timer;
  /** Where each reader is: the one furthest behind says what shared memory may drop. */
  private positions = new Set<{ pos: number }>();
  private readonly shared: SharedBytes;
  private constructor(
    readonly digest: string,
    /** Size announced by the upstream (or declared by its manifest), or null when unknown. */
    readonly total: number | null,
    private readonly writer: BlobWriter,
    budget?: MemoryBudget,
  ) {
    this.shared = new SharedBytes((position, into) => writer.readAt(position, into), budget);
  }

  /** Bytes received so far. */
  get written(): number {
    return this.writer.written;
  }

  static start(opts: {
    digest: string;
    total: number | null;
    body: ReadableStream<Uint8Array>;
    writer: BlobWriter;
    idleTimeoutMs: number;
    /** Below this rate, averaged over a window, the download is cut like a stalled one. */
    minRate?: TransferRate;
    /** What readers' shared memory may take (default: the process-wide budget). */
    memory?: MemoryBudget;
    onEnd: (d: Download) => void;
  }): Download {
    const d = new Download(opts.digest, opts.total, opts.writer, opts.memory);
    d.run(opts.body, opts.idleTimeoutMs, opts.minRate).finally(() => opts.onEnd(d));
    return d;
  }

  private notify() {
    clearTimeout(this.batch);
    this.batch = undefined;
    const w = this.wake;
    this.wake = [];
    for (const f of w) f();
  }

  private changed(): Promise<void> {
    return new Promise((resolve) => this.wake.push(resolve));
  }

  private async run(body: ReadableStream<Uint8Array>, idleTimeoutMs: number, minRate?: TransferRate) {
    const reader = timedReader(body, idleTimeoutMs, minRate);
    this.cancelRead = () => reader.cancel();
    try {
      for (;;) {
        const chunk = await reader.next();
        if (this.aborted) throw this.aborted;
        if (!chunk) break;
        // The writer holds the blob to its announced size.
        const at = this.writer.written;
        await this.writer.write(chunk);
        // Readers at the front get the chunk itself, not a read of the file.
        this.shared.add(at, chunk, this.oldest(), this.readers);
        // Several readers wake when a block is full, or a moment after its first bytes: each wake
        // costs every reader a piece and a socket write, so fewer, larger pieces go out.
        if (this.readers <= 1 || !this.shared.gathering) this.notify();
        else this.batch ??= setTimeout(() => this.notify(), BATCH_MS);
      }
      // The store verifies the size and the digest: from then on clients may have every byte, while
      // the store makes the blob durable and visible (fsync and rename, or completing an upload).
      await this.writer.verify();
      this.verified = true;
      this.notify();
      try {
        await this.writer.commit();
      } catch (err) {
        // No room in the store: the verified bytes still reach every reader (from the temp file,
        // dropped when the last one is done); nothing is stored.
        if (!isStoreFull(err) && !(err instanceof NotKept)) throw err;
        this.stored = false;
      }
      this.done = true;
    } catch (err) {
      reader.cancel();
      await this.writer.abort().catch(() => {});
      // Set only after the writer dropped its bytes, so no one sees the failure while they remain.
      this.error = err instanceof Error ? err : new Error(String(err));
    } finally {
      this.notify();
      await this.release();
    }
  }

  /** The position of the reader furthest behind (Infinity when none reads). */
  private oldest(): number {
    let min = Infinity;
    for (const p of this.positions) if (p.pos < min) min = p.pos;
    return min;
  }

  /** Lets the writer free what readers need once the download ended and no reader is left. */
  private async release() {
    if (!this.released && (this.done || this.error) && this.readers === 0) {
      this.released = true;
      this.shared.clear();
      if (!this.stored) await this.writer.abort().catch(() => {});
      await this.writer.release().catch(() => {});
    }
  }

  /** Stops the download (shutdown): readers get an error, nothing is committed. */
  abort(reason: string) {
    if (this.done || this.error) return;
    this.aborted = new Error(reason);
    this.cancelRead?.();
  }

  /** Resolves when the download has been committed or discarded. */
  settled(): Promise<void> {
    return this.done || this.error ? Promise.resolve() : this.changed().then(() => this.settled());
  }

  /** A stream of bytes [start, end] (end inclusive; null for "to the end"). */
  stream(start: number, end: number | null): ReadableStream<Uint8Array> {
    const at = { pos: start };
    this.readers++;
    this.positions.add(at);
    let finished = false;
    const finish = () => {
      if (!finished) {
        finished = true;
        this.readers--;
        this.positions.delete(at);
        this.shared.trim(this.oldest());
        void this.release();
      }
    };
    return new ReadableStream<Uint8Array>({
      cancel: () => finish(),
      pull: async (controller) => {
        for (;;) {
          if (this.error) {
            finish();
            controller.error(this.error);
            return;
          }
          // Hold back the final byte of what this reader gets (the blob's, or the range's) until the
          // whole blob is verified: no response looks complete before its bytes are known good.
          const written = this.writer.written;
          const wanted = end === null ? Infinity : end + 1;
          const whole = this.done || this.verified;
          const limit = whole ? Math.min(written, wanted) : Math.max(0, Math.min(written, wanted) - 1);
          if (at.pos < limit) {
            // A view of bytes shared with the other readers (or read for this one): never more
            // than the limit, so the held-back byte stays held back.
            let bytes: Uint8Array;
            try {
              bytes = await this.shared.get(at.pos, limit, written);
            } catch (err) {
              finish();
              controller.error(err);
              return;
            }
            at.pos += bytes.byteLength;
            controller.enqueue(bytes);
            return;
          }
          if ((whole && at.pos >= written) || (end !== null && at.pos > end)) {
            finish();
            controller.close();
            return;
          }
          await this.changed();
        }
      },
    }, { highWaterMark: 0 });
  }
}
