// A blob on its way into S3: each chunk goes to a local scratch file (readers joining the download
// read it back) and into a multipart upload, parts going up beside the download, a few at a time.
// The upload is completed — the object appears, whole — only once the digest is verified.
import { writeSync } from "node:fs";
import { mkdir, open, rm } from "node:fs/promises";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { StoreError, type BlobWriter } from "../types.ts";
import { verifyingWriter } from "../writer.ts";
import { abortUpload, completeUpload, startUpload, uploadPart } from "./multipart.ts";
import type { S3Access } from "./sigv4.ts";

/** Multipart parts uploading at once per blob. */
const PARTS_IN_FLIGHT = 3;

/** A failure of the S3 service as the store reports it. */
export function unavailable(err: unknown, what: string): StoreError {
  const e = err as { code?: string; message?: string };
  return new StoreError("unavailable", `S3 ${what}: ${e?.code ? `${e.code}: ` : ""}${e?.message ?? String(err)}`);
}

export async function s3BlobWriter(o: S3Access, client: Bun.S3Client, key: string, digest: string, size: number | undefined, scratch: string, partSize: number): Promise<BlobWriter> {
  await mkdir(scratch, { recursive: true });
  const path = join(scratch, randomUUID());
  const fh = await open(path, "w+", 0o600);
  let closed = false;
  let published = false;
  let uploadId: Promise<string> | null = null;
  /** Parts on their way up, in order; at most PARTS_IN_FLIGHT at once (memory: that many parts). */
  const parts: Array<Promise<string>> = [];
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  const takePending = () => {
    const bytes = Buffer.concat(pending);
    pending = [];
    pendingBytes = 0;
    return bytes;
  };
  const close = async () => {
    if (!closed) {
      closed = true;
      await fh.close().catch(() => {});
      await rm(path, { force: true });
    }
  };
  return verifyingWriter(digest, size, {
    async write(chunk, position) {
      let off = 0;
      while (off < chunk.byteLength) off += writeSync(fh.fd, chunk, off, chunk.byteLength - off, position + off);
      pending.push(chunk.slice());
      pendingBytes += chunk.byteLength;
      if (pendingBytes >= partSize) {
        uploadId ??= startUpload(o, key);
        const id = uploadId;
        const n = parts.length + 1;
        const bytes = takePending();
        // The upload runs beside the download; only a full pipeline makes the writer wait.
        if (parts.length >= PARTS_IN_FLIGHT) await parts[parts.length - PARTS_IN_FLIGHT];
        const part = id.then((u) => uploadPart(o, key, u, n, bytes));
        part.catch(() => {});
        parts.push(part);
      }
    },
    async readAt(position, into) {
      if (closed && published) {
        // A reader that joined as the writer was released: read the object itself.
        const bytes = await client.file(key).slice(position, position + into.byteLength).bytes();
        into.set(bytes);
        return bytes.byteLength;
      }
      if (closed) throw new StoreError("not-found", `the writer of ${digest} was released`);
      return (await fh.read(into, 0, into.byteLength, position)).bytesRead;
    },
    async publish() {
      if (uploadId) {
        const id = await uploadId;
        if (pendingBytes) parts.push(uploadPart(o, key, id, parts.length + 1, takePending()));
        await completeUpload(o, key, id, await Promise.all(parts));
      } else {
        try {
          await client.write(key, takePending());
        } catch (err) {
          throw unavailable(err, `writing ${key}`);
        }
      }
      published = true;
    },
    async drop() {
      pending = [];
      if (uploadId) {
        await Promise.allSettled(parts);
        const id = await uploadId.catch(() => null);
        if (id) await abortUpload(o, key, id).catch(() => {});
      }
      await close();
    },
    release: () => close(),
  });
}
