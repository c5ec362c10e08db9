// The directory store: plain files under one root, written atomically (temp file, fsync, rename).
//   blobs/sha256/<hex>                                  layer and config bytes
//   manifests/sha256/<hex>                              manifest and index bytes, exactly as pulled
//   repositories/<upstream>/<repository>/_tags/<tag>.json  one TagRecord per cached tag
//   tmp/<owner>/                                        in-progress writes of one process
// Several processes (serve, load, prune) may share a store: each writes its temp files in a
// directory of its own, and only a directory whose process is gone is cleaned up.
import { mkdir, open, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import { readFileSync, writeSync } from "node:fs";
import { join, relative, sep } from "node:path";
import { randomUUID } from "node:crypto";
import { digestOf, isDigest, parseDigest, type Digest } from "../oci/digest.ts";
import { isRepositoryName } from "../oci/names.ts";
import { processOwner, ownerIsGone } from "./owner.ts";
import { isRecordTag, parseTagRecord, serializeTagRecord } from "./record.ts";
import { StoreError, type BlobWriter, type Store, type StoredBlob, type TagRecord, type ContentKind } from "./types.ts";
import { verifyingWriter } from "./writer.ts";

/** `_tags` cannot be a repository path component (components start with [a-z0-9]). */
const TAGS_DIR = "_tags";
/** Tag record files read at once while walking the store. */
const READ_BATCH = 256;
/** Temp files of an older layout (directly in tmp/) are removed once this old. */
const LEGACY_TMP_AGE_MS = 60 * 60_000;

export function createFsStore(root: string): Store {
  const tmpRoot = join(root, "tmp");
  const tmpDir = join(tmpRoot, processOwner());

  function contentPath(kind: ContentKind, digest: string): string {
    const d: Digest | null = parseDigest(digest);
    if (!d) throw new Error(`not a digest: ${JSON.stringify(digest)}`);
    return join(root, kind, d.algorithm, d.hex);
  }

  function tagDir(upstream: string, repository: string): string {
    // Callers validate names; this guards the filesystem against anything that slipped through.
    if (!isRepositoryName(repository) || upstream.includes("/") || upstream.startsWith(".") || !upstream) {
      throw new Error(`unsafe repository path: ${upstream}/${repository}`);
    }
    return join(root, "repositories", upstream, repository, TAGS_DIR);
  }

  /** A record's file: `<tag>.json`, or `<algorithm>:<hex>.json` for an image pinned by digest. */
  function tagPath(upstream: string, repository: string, tag: string): string {
    if (!isRecordTag(tag)) throw new Error(`unsafe tag: ${JSON.stringify(tag)}`);
    return join(tagDir(upstream, repository), `${tag}.json`);
  }

  async function tempPath(): Promise<string> {
    await mkdir(tmpDir, { recursive: true });
    return join(tmpDir, randomUUID());
  }

  /** Writes bytes to a temp file, fsyncs it and renames it over `dest`; a failed write (disk full) leaves nothing. */
  async function writeAtomic(dest: string, bytes: Uint8Array): Promise<void> {
    const tmp = await tempPath();
    try {
      const fh = await open(tmp, "w", 0o644);
      try {
        await fh.writeFile(bytes);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await mkdir(join(dest, ".."), { recursive: true });
      await rename(tmp, dest);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  async function readOrNull(path: string): Promise<Uint8Array | null> {
    try {
      return new Uint8Array(await readFile(path));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw err;
    }
  }

  /**
   * Every tag record file under `dir`, sorted by path, parsed (null when it is not a valid record
   * of the upstream, repository and tag its path names). One recursive directory listing, then
   * files read a batch at a time in parallel: listing a store of 10,000 images must stay fast.
   */
  async function* walkTagFiles(dir: string): AsyncGenerator<{ path: string; record: TagRecord | null }> {
    let names: string[];
    try {
      names = await readdir(dir, { recursive: true });
    } catch {
      return;
    }
    const files = names.filter((n) => n.endsWith(".json") && n.split(sep).at(-2) === TAGS_DIR).sort();
    for (let i = 0; i < files.length; i += READ_BATCH) {
      // Small files read synchronously are several times faster than one promise each; a batch
      // at a time, yielding in between, keeps a running server answering.
      if (i) await new Promise((r) => setImmediate(r));
      for (const f of files.slice(i, i + READ_BATCH)) {
        let bytes: Uint8Array;
        try {
          bytes = readFileSync(join(dir, f));
        } catch {
          continue; // removed meanwhile
        }
        const parts = f.split(sep);
        const at = { upstream: parts[0]!, repository: parts.slice(1, -2).join("/"), tag: parts.at(-1)!.slice(0, -5) };
        yield { path: join(dir, f), record: parseTagRecord(bytes, at) };
      }
    }
  }

  return {
    location: root,

    async init() {
      await mkdir(root, { recursive: true });
      let removed = 0;
      try {
        for (const name of await readdir(tmpRoot)) {
          const path = join(tmpRoot, name);
          const s = await stat(path).catch(() => null);
          if (!s) continue;
          const stale = s.isDirectory() ? ownerIsGone(name) : Date.now() - s.mtimeMs > LEGACY_TMP_AGE_MS;
          if (!stale) continue;
          await rm(path, { force: true, recursive: true });
          removed++;
        }
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      }
      for (const dir of ["blobs/sha256", "manifests/sha256", "repositories", "tmp"]) {
        await mkdir(join(root, dir), { recursive: true });
      }
      return removed;
    },

    async probe() {
      await readdir(join(root, "repositories"));
      await writeAtomic(join(tmpDir, "probe"), new Uint8Array([1]));
      await rm(join(tmpDir, "probe"), { force: true });
    },

    async statBlob(digest) {
      const path = contentPath("blobs", digest);
      try {
        const s = await stat(path);
        return { size: s.size, file: Bun.file(path) } satisfies StoredBlob;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
        throw err;
      }
    },

    async createBlobWriter(digest, opts = {}): Promise<BlobWriter> {
      const dest = contentPath("blobs", digest);
      const path = await tempPath();
      const fh = await open(path, "w+", 0o644);
      let closed = false;
      let published = false;
      const close = async () => {
        if (!closed) {
          closed = true;
          await fh.close();
        }
      };
      return verifyingWriter(digest, opts.size, {
        async write(chunk, position) {
          // A synchronous write of one chunk (tens of microseconds into the page cache) costs a
          // fraction of a promise round trip per chunk, which dominated a cold download.
          let off = 0;
          while (off < chunk.byteLength) off += writeSync(fh.fd, chunk, off, chunk.byteLength - off, position + off);
        },
        async readAt(position, into) {
          if (closed && published) {
            // A reader that joined as the writer was released: the bytes are in place now.
            const bytes = new Uint8Array(await Bun.file(dest).slice(position, position + into.byteLength).arrayBuffer());
            into.set(bytes);
            return bytes.byteLength;
          }
          if (closed) throw new StoreError("not-found", `the writer of ${digest} was released`);
          // The handle stays valid through the rename, and through a prune's unlink after it.
          return (await fh.read(into, 0, into.byteLength, position)).bytesRead;
        },
        async publish() {
          await fh.sync();
          await mkdir(join(dest, ".."), { recursive: true });
          await rename(path, dest);
          published = true;
        },
        async drop() {
          await close().catch(() => {});
          await rm(path, { force: true });
        },
        release: () => close(),
      });
    },

    async readManifest(digest) {
      return readOrNull(contentPath("manifests", digest));
    },

    async writeManifest(digest, bytes) {
      const d = parseDigest(digest);
      if (!d || digestOf(bytes, d.algorithm) !== digest) {
        throw new StoreError("corrupt", `manifest bytes do not match ${digest}`);
      }
      await writeAtomic(contentPath("manifests", digest), bytes);
    },

    async readTag(upstream, repository, tag) {
      const bytes = await readOrNull(tagPath(upstream, repository, tag));
      return bytes ? parseTagRecord(bytes, { upstream, repository, tag }) : null;
    },

    async writeTag(record) {
      await writeAtomic(tagPath(record.upstream, record.repository, record.tag), serializeTagRecord(record));
    },

    async listTags(upstream, repository) {
      try {
        const files = await readdir(tagDir(upstream, repository));
        // Digest-pinned records (a ':' in the name, which no tag can have) are not tags.
        return files.filter((f) => f.endsWith(".json") && !f.includes(":")).map((f) => f.slice(0, -5)).sort();
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
        throw err;
      }
    },

    async *allTags(onDamaged) {
      for await (const t of walkTagFiles(join(root, "repositories"))) {
        if (t.record) yield t.record;
        else onDamaged?.(relative(root, t.path));
      }
    },

    async *listContent(kind) {
      for (const algorithm of ["sha256", "sha512"]) {
        let names: string[];
        try {
          names = await readdir(join(root, kind, algorithm));
        } catch {
          continue;
        }
        for (const n of names.sort()) if (isDigest(`${algorithm}:${n}`)) yield `${algorithm}:${n}`;
      }
    },

    async contentInfo(kind, digest) {
      try {
        const s = await stat(contentPath(kind, digest));
        return { size: s.size, modified: s.mtimeMs };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
        throw err;
      }
    },

    async removeContent(kind, digest) {
      await rm(contentPath(kind, digest), { force: true });
    },

    async removeTag(upstream, repository, tag) {
      await rm(tagPath(upstream, repository, tag), { force: true });
    },

    async stats() {
      const out = { blobs: 0, manifests: 0, bytes: 0, tags: 0 };
      for (const kind of ["blobs", "manifests"] as ContentKind[]) {
        for (const algorithm of ["sha256", "sha512"]) {
          const dir = join(root, kind, algorithm);
          let names: string[];
          try {
            names = await readdir(dir);
          } catch {
            continue;
          }
          for (let i = 0; i < names.length; i += READ_BATCH) {
            const sizes = await Promise.all(names.slice(i, i + READ_BATCH).map((n) => stat(join(dir, n)).then((s) => s.size, () => -1)));
            for (const s of sizes.filter((x) => x >= 0)) {
              out[kind]++;
              out.bytes += s;
            }
          }
        }
      }
      try {
        const names = await readdir(join(root, "repositories"), { recursive: true });
        out.tags = names.filter((n) => n.endsWith(".json") && n.split(sep).at(-2) === TAGS_DIR).length;
      } catch {
        // no records yet
      }
      return out;
    },

    async *damagedTags() {
      for await (const t of walkTagFiles(join(root, "repositories"))) {
        if (!t.record) yield { where: relative(root, t.path), remove: () => rm(t.path, { force: true }) };
      }
    },
  };
}
