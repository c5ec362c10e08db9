// One upstream blob download shared by every client that asks for it: bytes go to a spool file
// in the store while any number of readers stream them from that file, each from its own offset.
// Readers never see the final byte before the whole blob has been verified against its digest,
// so a failed or lying download can never look like a complete response.
import { open, type FileHandle } from "node:fs/promises";
import { createDigester, parseDigest } from "../oci/digest.ts";
import type { Spool } from "../store/types.ts";

const READ_CHUNK = 1024 * 1024;

export class Download {
  /** Bytes written to the spool so far. */
  written = 0;
  done = false;
  error: Error | null = null;
  private readers = 0;
  private aborted: Error | null = null;
  private closed = false;
  private wake: Array<() => void> = [];
  private constructor(
    readonly digest: string,
    /** Size announced by the upstream, or null when it sent no Content-Length. */
    readonly total: number | null,
    private readonly spool: Spool,
    private readonly fh: FileHandle,
  ) {}

  static async start(opts: {
    digest: string;
    total: number | null;
    body: ReadableStream<Uint8Array>;
    spool: Spool;
    idleTimeoutMs: number;
    onEnd: (d: Download) => void;
  }): Promise<Download> {
    const fh = await open(opts.spool.path, "w+", 0o644);
    const d = new Download(opts.digest, opts.total, opts.spool, fh);
    d.run(opts.body, opts.idleTimeoutMs).finally(() => opts.onEnd(d));
    return d;
  }

  private notify() {
    const w = this.wake;
    this.wake = [];
    for (const f of w) f();
  }

  private changed(): Promise<void> {
    return new Promise((resolve) => this.wake.push(resolve));
  }

  private async run(body: ReadableStream<Uint8Array>, idleTimeoutMs: number) {
    const parsed = parseDigest(this.digest)!;
    const hasher = createDigester(parsed.algorithm);
    const reader = body.getReader();
    this.cancelRead = () => void reader.cancel().catch(() => {});
    try {
      for (;;) {
        let timer: Timer | undefined;
        const idle = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no data from upstream for ${idleTimeoutMs} ms`)), idleTimeoutMs);
        });
        let chunk: Awaited<ReturnType<typeof reader.read>>;
        try {
          chunk = await Promise.race([reader.read(), idle]);
        } finally {
          clearTimeout(timer);
        }
        if (this.aborted) throw this.aborted;
        if (chunk.done) break;
        const bytes = chunk.value;
        if (this.total !== null && this.written + bytes.byteLength > this.total) {
          throw new Error(`upstream sent more than the ${this.total} bytes it announced`);
        }
        hasher.update(bytes);
        let off = 0;
        while (off < bytes.byteLength) {
          const { bytesWritten } = await this.fh.write(bytes, off, bytes.byteLength - off, this.written + off);
          off += bytesWritten;
        }
        this.written += bytes.byteLength;
        this.notify();
      }
      if (this.total !== null && this.written !== this.total) {
        throw new Error(`upstream sent ${this.written} of ${this.total} bytes`);
      }
      const got = hasher.digest();
      if (got !== this.digest) throw new Error(`upstream content does not match its digest (got ${got})`);
      await this.fh.sync();
      await this.spool.commitBlob(this.digest);
      this.done = true;
    } catch (err) {
      reader.cancel().catch(() => {});
      await this.spool.discard().catch(() => {});
      // Set only after the spool is gone, so no one sees the failure while a temp file remains.
      this.error = err instanceof Error ? err : new Error(String(err));
    } finally {
      this.notify();
      await this.release();
    }
  }

  /** Stops the download (shutdown): readers get an error, nothing is committed. */
  abort(reason: string) {
    if (this.done || this.error) return;
    this.aborted = new Error(reason);
    this.cancelRead?.();
  }
  private cancelRead?: () => void;

  /** Resolves when the download has been committed or discarded. */
  settled(): Promise<void> {
    return this.done || this.error ? Promise.resolve() : this.changed().then(() => this.settled());
  }

  /** Closes the spool handle once the download has ended and no reader needs it. */
  private async release() {
    if (!this.closed && (this.done || this.error) && this.readers === 0) {
      this.closed = true;
      await this.fh.close().catch(() => {});
    }
  }

  /** A stream of bytes [start, end] (end inclusive; null for "to the end"). */
  stream(start: number, end: number | null): ReadableStream<Uint8Array> {
    this.readers++;
    let pos = start;
    let released = false;
    const finish = () => {
      if (!released) {
        released = true;
        this.readers--;
        void this.release();
      }
    };
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        for (;;) {
          if (this.error) {
            finish();
            controller.error(this.error);
            return;
          }
          // Hold back the final byte of what this reader gets (the blob's, or the range's) until the
          // whole blob is verified: no response looks complete before its bytes are known good.
          const wanted = end === null ? Infinity : end + 1;
          const limit = this.done ? Math.min(this.written, wanted) : Math.max(0, Math.min(this.written, wanted) - 1);
          if (pos < limit) {
            const n = Math.min(limit - pos, READ_CHUNK);
            const buf = new Uint8Array(n);
            const { bytesRead } = await this.fh.read(buf, 0, n, pos);
            pos += bytesRead;
            controller.enqueue(bytesRead === n ? buf : buf.subarray(0, bytesRead));
            return;
          }
          if ((this.done && pos >= this.written) || (end !== null && pos > end)) {
            finish();
            controller.close();
            return;
          }
          await this.changed();
        }
      },
      cancel: () => finish(),
    }, { highWaterMark: 0 });
  }
}
