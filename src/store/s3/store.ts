// The S3 driver: the layout's keys as objects under a prefix in one bucket, so several replicas
// share one cache. Blobs go up as multipart uploads, completed only once verified (an object is
// whole or absent; writer.ts): beside the download, or in `serve` once its clients are quiet; a
// local scratch copy under the image path serves readers joining a download. Records are updated
// with conditional PUTs (conditional.ts), so replicas never lose each other's changes. Reads are S3
// files: sliceable, streamed by Bun, presignable.
import { randomUUID } from "node:crypto";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { S3File } from "bun";
import pLimit from "p-limit";
import type { Driver } from "../driver.ts";
import { ownTempPrefix, TEMP_PREFIX } from "../keys.ts";
import { removeLeftoverTemps } from "../scratch.ts";
import { createLayoutStore } from "../layout.ts";
import { StoreError, type Store } from "../types.ts";
import { putIf, readVersioned, removeIf, unlessTombstone } from "./conditional.ts";
import { abortUpload, incompleteUploads } from "./multipart.ts";
import { createLocalCopies } from "./local-copy.ts";
import { s3Request, type S3Access } from "./sigv4.ts";
import { isAbsent, s3BlobWriter, unavailable } from "./writer.ts";

export interface S3StoreOptions extends S3Access {
  /** Key prefix inside the bucket ("" or ending in "/"). */
  prefix: string;
  /** Local directory for the scratch copies of downloads (the image path). */
  scratchDir: string;
  /** Multipart part size (default 8 MiB; S3's minimum is 5 MiB). */
  partSize?: number;
  /** Serve warm blobs as redirects to presigned URLs. */
  redirect?: boolean;
  /** Incomplete uploads older than this are aborted by init (default 1 hour). */
  staleUploadMs?: number;
  /** Bytes of verified blobs kept on local disk and sent with sendfile (local-copy.ts); 0 or absent: none. */
  localCopyBytes?: number;
  /**
   * When set (serve), a blob's parts go up once this resolves (the clients are quiet: `QuietGate`),
   * after its download, not beside it; a long download's parts still go up beside it, trailing it
   * by `uploadTrailBytes`. Unset: beside the download.
   */
  uploadWhenQuiet?: () => Promise<void>;
  /** How far the upload may trail the download when deferred (s3.uploadTrail): what is left to send after its last byte. */
  uploadTrailBytes?: number;
  /** What the metrics count. */
  observe?: S3Observer;
  /** Debug messages (why a local copy was not kept). */
  debug?: (message: string) => void;
}

/** What the S3 store tells the metrics. */
export interface S3Observer {
  /** The local copy's bytes and copies now. */
  localCopy(bytes: number, copies: number): void;
  /** Blobs whose upload waits for quiet clients: +1 as one starts waiting, -1 as it goes. */
  uploadsWaiting(delta: number): void;
}

/** Objects read at once while walking records. */
const READ_CONCURRENCY = 16;

/** The S3 store: the layout over an S3 driver. */
export function createS3Store(o: S3StoreOptions): Store {
  return createLayoutStore(s3Driver(o));
}

export function s3Driver(o: S3StoreOptions): Driver {
  const client = new Bun.S3Client({
    endpoint: o.endpoint, region: o.region, bucket: o.bucket, accessKeyId: o.accessKeyId, secretAccessKey: o.secretAccessKey,
    virtualHostedStyle: !o.pathStyle,
  });
  const prefix = o.prefix;
  const partSize = Math.max(5 * 1024 * 1024, o.partSize ?? 8 * 1024 * 1024);
  const scratch = join(o.scratchDir, ownTempPrefix());
  const limit = pLimit(READ_CONCURRENCY);
  const defer = o.uploadWhenQuiet ? { quiet: o.uploadWhenQuiet, trailBytes: o.uploadTrailBytes ?? 0, waiting: o.observe?.uploadsWaiting } : undefined;
  // In this process's temp directory: dropped at the next start like scratch copies (a copy is not
  // re-verified after a restart), one directory per store (tests open several stores in one process).
  const copies = o.localCopyBytes && !o.redirect ? createLocalCopies(join(scratch, `copies-${randomUUID().slice(0, 8)}`), o.localCopyBytes, { debug: o.debug, changed: o.observe?.localCopy }) : null;

  /** `op` on the object at `key`; null when S3 says it is absent. */
  async function orNull<T>(key: string, op: (file: S3File) => Promise<T>): Promise<T | null> {
    const file = client.file(prefix + key);
    try {
      return await op(file);
    } catch (err) {
      if (isAbsent(err)) return null;
      throw unavailable(err, `reading ${prefix + key}`);
    }
  }

  // A record being removed (a tombstone, conditional.ts) reads as absent.
  const read = (key: string) => orNull(key, (file) => file.bytes()).then(unlessTombstone);

  return {
    location: `s3://${o.bucket}/${prefix}`,

    shared: true,

    async init() {
      // Scratch copies and relay spools of local processes that were killed.
      const leftovers = await removeLeftoverTemps(join(o.scratchDir, TEMP_PREFIX));
      await mkdir(scratch, { recursive: true });
      try {
        await client.list({ prefix, maxKeys: 1 });
      } catch (err) {
        throw unavailable(err, `store ${o.endpoint} bucket ${o.bucket}`, " (check s3.endpoint, s3.bucket and the access key)");
      }
      // Uploads a crashed replica left: invisible, but they cost space until aborted.
      let aborted = 0;
      const stale = Date.now() - (o.staleUploadMs ?? 60 * 60_000);
      for (const u of await incompleteUploads(o, `${prefix}blobs/`)) {
        if (u.initiated < stale) {
          await abortUpload(o, u.key, u.uploadId);
          aborted++;
        }
      }
      return leftovers + aborted;
    },

    read,

    readMany: (keys) => Promise.all(keys.map((k) => limit(() => read(k)))),

    async put(key, bytes) {
      try {
        await client.write(prefix + key, bytes);
      } catch (err) {
        throw unavailable(err, `writing ${prefix + key}`);
      }
    },

    /** A PUT with `If-None-Match: *` (Bun's client cannot send it): false when the object exists. */
    create: (key, bytes) => putIf(o, prefix + key, bytes, null),

    readVersioned: (key) => readVersioned(o, prefix + key, Date.now),

    putIf: (key, bytes, version) => putIf(o, prefix + key, bytes, version),

    removeIf: (key, version) => removeIf(o, prefix + key, version, Date.now),

    stat: (key) => orNull(key, async (file) => {
      const s = await file.stat();
      return { size: s.size, modified: s.lastModified ? new Date(s.lastModified).getTime() : 0 };
    }),

    async serve(key) {
      // The HEAD is also what lets a local copy be served: only while the object is in S3 now. A
      // copy outliving a removal by another replica (prune, eviction, DELETE) would answer for a
      // blob the store no longer holds, which a fresh pull would have re-fetched through the
      // upstream's policy. One HEAD (~1 ms) is what a stream of the same blob costs before its body.
      const served = await orNull(key, async (file) => {
        const s = await file.stat();
        if (o.redirect) return { size: s.size, file, streamOnly: true, redirect: (expiresIn: number) => file.presign({ expiresIn, method: "GET" }) };
        const copy = copies?.find(key, s.size);
        if (copy) return { size: s.size, file: copy };
        return { size: s.size, file, streamOnly: true, ...(copies ? { stream: () => copies.fill(key, s.size, () => file.stream()) } : {}) };
      });
      if (!served) await copies?.drop(key);
      return served;
    },

    async remove(key) {
      await copies?.drop(key);
      await client.delete(prefix + key).catch((err) => {
        if (!isAbsent(err)) throw unavailable(err, `removing ${prefix + key}`);
      });
    },

    async *list(under) {
      let continuationToken: string | undefined;
      do {
        let page;
        try {
          page = await client.list({ prefix: prefix + under, maxKeys: 1000, ...(continuationToken ? { continuationToken } : {}) });
        } catch (err) {
          throw unavailable(err, `listing ${prefix + under}`);
        }
        // S3 lists in key order (UTF-8 bytes; our keys are ASCII).
        for (const c of page.contents ?? []) yield { key: c.key.slice(prefix.length), size: c.size ?? 0 };
        continuationToken = page.isTruncated ? page.nextContinuationToken : undefined;
      } while (continuationToken);
    },

    openWriter: (key) => s3BlobWriter(o, client, prefix + key, scratch, partSize, copies ? (path, size) => copies.adopt(key, path, size) : undefined, defer),
  };
}

/** Creates a bucket (Bun has no call for it): a signed PUT on the bucket. */
export async function createBucket(a: S3Access): Promise<void> {
  const res = await s3Request(a, "PUT", "");
  await res.body?.cancel();
  if (!res.ok && res.status !== 409) throw new StoreError("unavailable", `S3 creating bucket ${a.bucket}: HTTP ${res.status}`);
}
