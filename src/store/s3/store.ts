// The S3 store: the directory layout as object keys under a prefix in one bucket, so several
// replicas share one cache. Blobs go up as multipart uploads while they download, completed only
// once verified (an object is whole or absent); a local scratch copy under the image path serves
// readers joining a download. Tag records are JSON objects written last-writer-wins (each replica
// merges last-pulled times before it writes). Reads are S3 files: sliceable, streamed by Bun.
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import pLimit from "p-limit";
import { digestOf, isDigest, parseDigest } from "../../oci/digest.ts";
import { isRepositoryName } from "../../oci/names.ts";
import { processOwner } from "../owner.ts";
import { isRecordTag, parseTagRecord, serializeTagRecord } from "../record.ts";
import { StoreError, type ContentKind, type Store, type TagRecord } from "../types.ts";
import { abortUpload, incompleteUploads } from "./multipart.ts";
import { s3Request, type S3Access } from "./sigv4.ts";
import { s3BlobWriter, unavailable } from "./writer.ts";

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
}

const READ_CONCURRENCY = 16;

function notFound(err: unknown): boolean {
  const e = err as { code?: string; name?: string; message?: string; status?: number };
  return e?.code === "NoSuchKey" || e?.code === "ENOENT" || e?.status === 404 || /NoSuchKey|not found|404/i.test(e?.message ?? "");
}


export function createS3Store(o: S3StoreOptions): Store {
  const client = new Bun.S3Client({
    endpoint: o.endpoint, region: o.region, bucket: o.bucket, accessKeyId: o.accessKeyId, secretAccessKey: o.secretAccessKey,
    virtualHostedStyle: !o.pathStyle,
  });
  const prefix = o.prefix;
  const partSize = Math.max(5 * 1024 * 1024, o.partSize ?? 8 * 1024 * 1024);
  const scratch = join(o.scratchDir, "tmp", processOwner());
  const limit = pLimit(READ_CONCURRENCY);

  function contentKey(kind: ContentKind, digest: string): string {
    const d = parseDigest(digest);
    if (!d) throw new StoreError("corrupt", `not a digest: ${JSON.stringify(digest)}`);
    return `${prefix}${kind}/${d.algorithm}/${d.hex}`;
  }

  function tagKey(upstream: string, repository: string, tag: string): string {
    if (!isRepositoryName(repository) || upstream.includes("/") || upstream.startsWith(".") || !upstream || !isRecordTag(tag)) {
      throw new Error(`unsafe record: ${upstream}/${repository}:${tag}`);
    }
    return `${prefix}repositories/${upstream}/${repository}/_tags/${tag}.json`;
  }

  async function readBytes(key: string): Promise<Uint8Array | null> {
    try {
      return await client.file(key).bytes();
    } catch (err) {
      if (notFound(err)) return null;
      throw unavailable(err, `reading ${key}`);
    }
  }

  async function* keys(under: string): AsyncGenerator<{ key: string; size: number; modified: number }> {
    let continuationToken: string | undefined;
    do {
      let page;
      try {
        page = await client.list({ prefix: under, maxKeys: 1000, ...(continuationToken ? { continuationToken } : {}) });
      } catch (err) {
        throw unavailable(err, `listing ${under}`);
      }
      for (const c of page.contents ?? []) yield { key: c.key, size: c.size ?? 0, modified: c.lastModified ? Date.parse(String(c.lastModified)) : 0 };
      continuationToken = page.isTruncated ? page.nextContinuationToken : undefined;
    } while (continuationToken);
  }

  /** Every record object, parsed against the place its key names (null when it is not a valid record of it). */
  async function* records(): AsyncGenerator<{ key: string; record: TagRecord | null }> {
    const root = `${prefix}repositories/`;
    const batch: string[] = [];
    const flush = async function* () {
      const read = await Promise.all(batch.map((k) => limit(() => readBytes(k))));
      for (let i = 0; i < batch.length; i++) {
        const bytes = read[i];
        if (!bytes) continue;
        const parts = batch[i]!.slice(root.length).split("/");
        const at = { upstream: parts[0]!, repository: parts.slice(1, -2).join("/"), tag: parts.at(-1)!.slice(0, -5) };
        yield { key: batch[i]!, record: parseTagRecord(bytes, at) };
      }
      batch.length = 0;
    };
    for await (const k of keys(root)) {
      if (!k.key.endsWith(".json") || k.key.split("/").at(-2) !== "_tags") continue;
      batch.push(k.key);
      if (batch.length >= 256) yield* flush();
    }
    yield* flush();
  }

  return {
    location: `s3://${o.bucket}/${prefix}`,

    async init() {
      await mkdir(scratch, { recursive: true });
      try {
        await client.list({ prefix, maxKeys: 1 });
      } catch (err) {
        const e = err as { code?: string; message?: string };
        throw new StoreError("unavailable", `S3 store ${o.endpoint} bucket ${o.bucket}: ${e?.code ? `${e.code}: ` : ""}${e?.message ?? String(err)} (check s3.endpoint, s3.bucket and the access key)`);
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
      return aborted;
    },

    async probe() {
      const key = `${prefix}tmp/probe-${processOwner()}`;
      try {
        await client.write(key, "1");
        await client.delete(key);
      } catch (err) {
        throw unavailable(err, "probe");
      }
    },

    async statBlob(digest) {
      const key = contentKey("blobs", digest);
      const file = client.file(key);
      try {
        const s = await file.stat();
        return { size: s.size, file, streamOnly: true, ...(o.redirect ? { redirect: (expiresIn: number) => file.presign({ expiresIn, method: "GET" }) } : {}) };
      } catch (err) {
        if (notFound(err)) return null;
        throw unavailable(err, `reading ${key}`);
      }
    },

    createBlobWriter: (digest, opts = {}) => s3BlobWriter(o, client, contentKey("blobs", digest), digest, opts.size, scratch, partSize),

    readManifest: (digest) => readBytes(contentKey("manifests", digest)),

    async writeManifest(digest, bytes) {
      const d = parseDigest(digest);
      if (!d || digestOf(bytes, d.algorithm) !== digest) throw new StoreError("corrupt", `manifest bytes do not match ${digest}`);
      try {
        await client.write(contentKey("manifests", digest), bytes);
      } catch (err) {
        throw unavailable(err, `writing manifest ${digest}`);
      }
    },

    async readTag(upstream, repository, tag) {
      const bytes = await readBytes(tagKey(upstream, repository, tag));
      return bytes ? parseTagRecord(bytes, { upstream, repository, tag }) : null;
    },

    async writeTag(record) {
      const key = tagKey(record.upstream, record.repository, record.tag);
      try {
        await client.write(key, serializeTagRecord(record));
      } catch (err) {
        throw unavailable(err, `writing ${key}`);
      }
    },

    async listTags(upstream, repository) {
      const dir = tagKey(upstream, repository, "x").slice(0, -"x.json".length);
      const out: string[] = [];
      for await (const k of keys(dir)) {
        const name = k.key.slice(dir.length);
        if (name.endsWith(".json") && !name.includes("/") && !name.includes(":")) out.push(name.slice(0, -5));
      }
      return out.sort();
    },

    async *allTags(onDamaged) {
      for await (const r of records()) {
        if (r.record) yield r.record;
        else onDamaged?.(r.key.slice(prefix.length));
      }
    },

    async *listContent(kind) {
      for (const algorithm of ["sha256", "sha512"]) {
        const under = `${prefix}${kind}/${algorithm}/`;
        for await (const k of keys(under)) {
          const digest = `${algorithm}:${k.key.slice(under.length)}`;
          if (isDigest(digest)) yield digest;
        }
      }
    },

    async contentInfo(kind, digest) {
      try {
        const s = await client.file(contentKey(kind, digest)).stat();
        return { size: s.size, modified: s.lastModified ? new Date(s.lastModified).getTime() : 0 };
      } catch (err) {
        if (notFound(err)) return null;
        throw unavailable(err, `reading ${digest}`);
      }
    },

    async removeContent(kind, digest) {
      await client.delete(contentKey(kind, digest)).catch((err) => {
        if (!notFound(err)) throw unavailable(err, `removing ${digest}`);
      });
    },

    async removeTag(upstream, repository, tag) {
      const key = tagKey(upstream, repository, tag);
      await client.delete(key).catch((err) => {
        if (!notFound(err)) throw unavailable(err, `removing ${key}`);
      });
    },

    async stats() {
      const out = { blobs: 0, manifests: 0, bytes: 0, tags: 0 };
      for (const kind of ["blobs", "manifests"] as ContentKind[]) {
        for await (const k of keys(`${prefix}${kind}/`)) {
          out[kind]++;
          out.bytes += k.size;
        }
      }
      for await (const k of keys(`${prefix}repositories/`)) if (k.key.endsWith(".json") && k.key.split("/").at(-2) === "_tags") out.tags++;
      return out;
    },

    async *damagedTags() {
      for await (const r of records()) {
        if (!r.record) yield { where: r.key.slice(prefix.length), remove: () => client.delete(r.key).then(() => {}) };
      }
    },
  };
}

/** Creates a bucket (Bun has no call for it): a signed PUT on the bucket. */
export async function createBucket(a: S3Access): Promise<void> {
  const res = await s3Request(a, "PUT", "");
  await res.body?.cancel();
  if (!res.ok && res.status !== 409) throw new StoreError("unavailable", `S3 creating bucket ${a.bucket}: HTTP ${res.status}`);
}
