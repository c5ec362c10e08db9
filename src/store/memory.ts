// A store in memory, for tests: the same contract as the directory and S3 stores, no disk.
import { digestOf, parseDigest } from "../oci/digest.ts";
import { recordName } from "./record.ts";
import { StoreError, type ContentKind, type Store, type TagRecord } from "./types.ts";
import { verifyingWriter } from "./writer.ts";

interface Item {
  bytes: Uint8Array;
  modified: number;
}

export function createMemoryStore(now: () => number = Date.now): Store {
  const content: Record<ContentKind, Map<string, Item>> = { blobs: new Map(), manifests: new Map() };
  const tags = new Map<string, TagRecord>();
  const checked = (digest: string) => {
    if (!parseDigest(digest)) throw new StoreError("corrupt", `not a digest: ${JSON.stringify(digest)}`);
    return digest;
  };

  return {
    location: "memory",
    async init() {
      return 0;
    },
    async probe() {},
    async statBlob(digest) {
      const b = content.blobs.get(checked(digest));
      return b ? { size: b.bytes.byteLength, file: new Blob([b.bytes as Uint8Array<ArrayBuffer>]) } : null;
    },
    async createBlobWriter(digest, opts = {}) {
      let chunks: Uint8Array[] = [];
      let buffer = new Uint8Array(0);
      const flat = () => {
        if (chunks.length) {
          buffer = Buffer.concat([buffer, ...chunks]);
          chunks = [];
        }
        return buffer;
      };
      return verifyingWriter(checked(digest), opts.size, {
        async write(chunk) {
          chunks.push(chunk.slice());
        },
        async readAt(position, into) {
          const b = flat().subarray(position, position + into.byteLength);
          into.set(b);
          return b.byteLength;
        },
        async publish() {
          content.blobs.set(digest, { bytes: flat(), modified: now() });
        },
        async drop() {
          chunks = [];
          buffer = new Uint8Array(0);
        },
        async release() {},
      });
    },
    async readManifest(digest) {
      return content.manifests.get(checked(digest))?.bytes ?? null;
    },
    async writeManifest(digest, bytes) {
      const d = parseDigest(digest);
      if (!d || digestOf(bytes, d.algorithm) !== digest) throw new StoreError("corrupt", `manifest bytes do not match ${digest}`);
      content.manifests.set(digest, { bytes: bytes.slice(), modified: now() });
    },
    async readTag(upstream, repository, tag) {
      const r = tags.get(recordName({ upstream, repository, tag }));
      return r ? { ...r } : null;
    },
    async writeTag(record) {
      tags.set(recordName(record), { ...record });
    },
    async listTags(upstream, repository) {
      return [...tags.values()].filter((r) => r.upstream === upstream && r.repository === repository && !r.tag.includes(":")).map((r) => r.tag).sort();
    },
    async *allTags() {
      for (const key of [...tags.keys()].sort()) yield { ...tags.get(key)! };
    },
    async *listContent(kind) {
      for (const d of [...content[kind].keys()].sort()) yield d;
    },
    async contentInfo(kind, digest) {
      const i = content[kind].get(checked(digest));
      return i ? { size: i.bytes.byteLength, modified: i.modified } : null;
    },
    async removeContent(kind, digest) {
      content[kind].delete(checked(digest));
    },
    async removeTag(upstream, repository, tag) {
      tags.delete(recordName({ upstream, repository, tag }));
    },
    async *damagedTags() {},
    async stats() {
      let bytes = 0;
      for (const kind of ["blobs", "manifests"] as ContentKind[]) for (const i of content[kind].values()) bytes += i.bytes.byteLength;
      return { blobs: content.blobs.size, manifests: content.manifests.size, bytes, tags: tags.size };
    },
  };
}
