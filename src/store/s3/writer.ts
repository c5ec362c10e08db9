// A blob on its way into S3: each chunk goes to a local scratch file (readers joining the download
// read it back), and each full part, sent from it, into a multipart upload, a few at a time:
// beside the download, or (serve) once its clients are quiet. The upload is completed — the object
// appears, whole — only once the digest is verified.
import { statSync } from "node:fs";
import pLimit from "p-limit";
import type { WriterBackend } from "../driver.ts";
import { openScratch } from "../scratch.ts";
import { StoreError } from "../types.ts";
import { abortUpload, completeUpload, putObject, startUpload, uploadPart } from "./multipart.ts";
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

/** When a blob's parts go up, when clients are to be served first (S3StoreOptions.uploadWhenQuiet). */
export interface UploadDeferral {
  /** Resolves when the clients are quiet (or have waited long enough). */
  quiet: () => Promise<void>;
  /** Bytes the upload may trail the download by: parts go up beside the download only past this. */
  trailBytes: number;
  /** Told +1 as a blob's upload starts waiting for quiet, -1 as it goes (metrics). */
  waiting?: (delta: number) => void;
}

/**
 * Where the bytes for `key` go while downloaded: the scratch file, at the download's own speed
 * (clients read from it). Each full part is sent from the scratch file, a few at a time, so the
 * download never waits for S3 (a pipeline that did held a cold pull to S3's upload speed) and only
 * the parts in flight are in memory. Without `defer` the parts go up beside the download. With it
 * they trail it by up to `trailBytes` and the rest waits, once the digest matched, for `quiet`:
 * the clients have their bytes first, and S3 ingests them after (or beside a long download).
 */
export async function s3BlobWriter(
  o: S3Access, client: Bun.S3Client, key: string, scratch: string, partSize: number,
  /** Told of the verified scratch file once the object is complete (the local copy links it). */
  keep?: (path: string, size: number) => Promise<void>,
  defer?: UploadDeferral,
): Promise<WriterBackend> {
  const file = await openScratch(scratch, 0o600, key);
  let uploadId: Promise<string> | null = null;
  /** Parts on their way up (or waiting for a slot), in order. */
  const parts: Array<Promise<string>> = [];
  const slots = pLimit(PARTS_IN_FLIGHT);
  let written = 0;
  let dropped = false;
  const trail = defer?.trailBytes ?? 0;
  /** Bytes handed to parts so far. */
  let queued = 0;
  /**
   * A part (or a blob under one part) as a slice of the scratch file, sent from the file by the
   * HTTP client: reading it back into memory first (8 MiB per part) cost the pull a copy and its
   * garbage on the 2 cores the download shares with S3, and held up to 8 MiB per small blob being
   * stored. The bytes are written (synchronously) before their part is queued.
   */
  const partOfFile = (from: number, length: number) => {
    const have = statSync(file.path).size;
    if (have < from + length) throw new StoreError("unavailable", `the scratch copy of ${key} has ${have} bytes, not ${from + length}`);
    return Bun.file(file.path).slice(from, from + length);
  };
  const queuePart = (length: number) => {
    uploadId ??= startUpload(o, key);
    const id = uploadId;
    const n = parts.length + 1;
    const from = queued;
    queued += length;
    const part = slots(async () => {
      if (dropped) throw new StoreError("unavailable", `the upload of ${key} was dropped`);
      return uploadPart(o, key, await id, n, partOfFile(from, length));
    });
    part.catch(() => {});
    parts.push(part);
  };
  return {
    async write(chunk, position) {
      file.write(chunk, position);
      written = position + chunk.byteLength;
      while (written - queued >= partSize + trail) queuePart(partSize);
    },
    readAt: file.readAt,
    async publish() {
      if (defer && written - queued >= partSize) {
        // A part or more still to send: once the clients are served (the bytes are verified).
        defer.waiting?.(1);
        try {
          await defer.quiet();
        } finally {
          defer.waiting?.(-1);
        }
        // Dropped meanwhile (an abort): no upload is started for bytes already discarded.
        if (dropped) throw new StoreError("unavailable", `the upload of ${key} was dropped`);
        while (written - queued >= partSize) queuePart(partSize);
      }
      if (uploadId) {
        if (written > queued) queuePart(written - queued);
        await completeUpload(o, key, await uploadId, await Promise.all(parts));
      } else {
        try {
          await putObject(o, key, partOfFile(0, written));
        } catch (err) {
          throw err instanceof StoreError ? err : unavailable(err, `writing ${key}`);
        }
      }
      // publish() runs only once the digest matched (verifyingWriter): these bytes are verified.
      await keep?.(file.path, written);
      // Readers that join once the scratch copy is gone read the object itself.
      file.published((position, length) => client.file(key).slice(position, position + length).bytes());
    },
    async drop() {
      dropped = true; // parts still waiting for a slot are not sent
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
