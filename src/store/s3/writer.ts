// A blob on its way into S3: each chunk goes to a local scratch file (readers joining the download
// read it back) and into a multipart upload, parts going up beside the download, a few at a time.
// The upload is completed — the object appears, whole — only once the digest is verified.
import type { WriterBackend } from "../driver.ts";
import { openScratch } from "../scratch.ts";
import { StoreError } from "../types.ts";
import { abortUpload, completeUpload, startUpload, uploadPart } from "./multipart.ts";
import type { S3Access } from "./sigv4.ts";

/** Multipart parts uploading at once per blob. */
const PARTS_IN_FLIGHT = 3;

/**
 * Whether an S3 call failed because the object is absent. Decided on what the client reports, never
 * on message text: Bun's S3Error carries S3's error code ("NoSuchKey"), which Bun also sets for a
 * bodiless 404 (a HEAD); a client that reports the HTTP status says 404.
 */
export function isAbsent(err: unknown): boolean {
  const e = err as { name?: unknown; code?: unknown; status?: unknown } | null;
  return (e?.name === "S3Error" && e.code === "NoSuchKey") || e?.status === 404;
}

/** A failure of the S3 service as the store reports it; `hint` says what to check. */
export function unavailable(err: unknown, what: string, hint = ""): StoreError {
  const e = err as { code?: string; message?: string };
  return new StoreError("unavailable", `S3 ${what}: ${e?.code ? `${e.code}: ` : ""}${e?.message ?? String(err)}${hint}`);
}

/** Where the bytes for `key` go while downloaded: a scratch file and a multipart upload. */
export async function s3BlobWriter(o: S3Access, client: Bun.S3Client, key: string, scratch: string, partSize: number): Promise<WriterBackend> {
  const file = await openScratch(scratch, 0o600, key);
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
  return {
    async write(chunk, position) {
      file.write(chunk, position);
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
    readAt: file.readAt,
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
      // Readers that join once the scratch copy is gone read the object itself.
      file.published((position, length) => client.file(key).slice(position, position + length).bytes());
    },
    async drop() {
      pending = [];
      if (uploadId) {
        await Promise.allSettled(parts);
        const id = await uploadId.catch(() => null);
        if (id) await abortUpload(o, key, id).catch(() => {});
      }
      await file.discard();
    },
    release: () => file.discard(),
  };
}
