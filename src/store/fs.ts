// The directory driver: each key a plain file under one root, written atomically (temp file, fsync,
// rename) and served by the kernel (Bun.file, sendfile). Several processes (serve, load, prune)
// may share a directory: each writes its temp files in a directory of its own (tmp/<owner>/), and
// only a directory whose process is gone is cleaned up.
import { link, mkdir, open, readdir, readFile, rename, rm, stat, statfs, unlink } from "node:fs/promises";
import { readFileSync, statSync, type Dirent } from "node:fs";
import { dirname, join, relative, sep } from "node:path";
import type { Driver, WriterBackend } from "./driver.ts";
import { ownTempPrefix, TEMP_PREFIX } from "./keys.ts";
import { createLayoutStore } from "./layout.ts";
import { keyLocks } from "./lock.ts";
import { openScratch, removeLeftoverTemps, scratchPath } from "./scratch.ts";
import type { Store } from "./types.ts";

/** Files stat'ed at once when a listing asks for sizes. */
const STAT_BATCH = 256;

const absent = (err: unknown) => ["ENOENT", "ENOTDIR"].includes((err as NodeJS.ErrnoException).code ?? "");
/** null for a failure that says the file is not there; rethrows any other. */
function nullIfAbsent(err: unknown): null {
  if (absent(err)) return null;
  throw err;
}
const orNull = <T>(op: () => Promise<T>): Promise<T | null> => op().catch(nullIfAbsent);
/** unlink(2), absent or not: rm's force costs an lstat more per file (an eviction removes thousands). */
const removeFile = (path: string): Promise<void> => unlink(path).catch((err) => void nullIfAbsent(err));
/** A file's version for conditional writes: a hash of its bytes (an inode number is reused, an mtime is coarse). */
const versionOf = (bytes: Uint8Array | null) => (bytes ? new Bun.CryptoHasher("sha256").update(bytes).digest("hex") : null);
/** A file's size; -1 when it is gone (removed between a listing and its stat) or not a file. */
function sizeOf(path: string): number {
  try {
    const s = statSync(path);
    return s.isFile() ? s.size : -1;
  } catch {
    return -1;
  }
}

/** The directory store: the layout over a directory driver. */
export function createFsStore(root: string): Store {
  return createLayoutStore(fsDriver(root));
}

export function fsDriver(root: string): Driver {
  const tmpRoot = join(root, TEMP_PREFIX);
  const tmpDir = join(root, ownTempPrefix());
  // Keys come checked from the layout (keys.ts): no "..", no leading "/"; a concatenation, not a
  // join that normalises the path again on the warm blob path.
  const base = join(root, "/");
  const pathOf = (key: string) => base + key;
  const locked = keyLocks(join(tmpRoot, "locks"));
  const readBytes = (key: string) => orNull(async () => new Uint8Array(await readFile(pathOf(key))));

  /** Writes bytes to a synced temp file, then `place`s it at the key's path; nothing is left of a failure. */
  async function placed(key: string, bytes: Uint8Array, place: (tmp: string, dest: string) => Promise<void>) {
    const tmp = await scratchPath(tmpDir);
    try {
      const fh = await open(tmp, "w", 0o644);
      try {
        await fh.writeFile(bytes);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await mkdir(dirname(pathOf(key)), { recursive: true });
      await place(tmp, pathOf(key));
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  /**
   * The files under `dir` (a key prefix ending in "/", or ""), in key order: one directory read at a
   * time, depth first, so a listing of 100,000 records holds one directory's entries, not all.
   */
  async function* keysUnder(dir: string): AsyncGenerator<{ key: string; size: number }> {
    const entries = await orNull(() => readdir(pathOf(dir), { withFileTypes: true }));
    if (!entries) return;
    // A directory sorts as its name and a "/" (its keys), so "a.b" comes before "a/x".
    const items = entries.map((e) => (e.isDirectory() ? `${e.name}/` : e.isFile() ? e.name : "")).filter((n) => n).sort();
    for (const name of items) {
      if (name.endsWith("/")) yield* keysUnder(dir + name);
      else yield { key: dir + name, size: 0 };
    }
  }

  return {
    location: root,

    async init(dirs) {
      await mkdir(root, { recursive: true });
      const removed = await removeLeftoverTemps(tmpRoot);
      for (const dir of dirs) await mkdir(join(root, dir), { recursive: true });
      return removed;
    },

    read: readBytes,

    async readMany(keys) {
      // Small files read synchronously are several times faster than one promise each; a batch
      // at a time, yielding in between, keeps a running server answering.
      await new Promise((r) => setImmediate(r));
      return keys.map((key) => {
        try {
          return readFileSync(pathOf(key));
        } catch {
          return null; // removed meanwhile
        }
      });
    },

    /** Writes bytes to a temp file, fsyncs it and renames it over the key; a failed write (disk full) leaves nothing. */
    put: (key, bytes) => placed(key, bytes, (tmp, dest) => rename(tmp, dest)),

    /** The same, but link(2) instead of rename: it fails with EEXIST rather than replace a file. */
    async create(key, bytes) {
      let created = true;
      await placed(key, bytes, async (tmp, dest) => {
        await link(tmp, dest).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== "EEXIST") throw err;
          created = false;
        });
        await rm(tmp, { force: true });
      });
      return created;
    },

    async readVersioned(key) {
      const bytes = await readBytes(key);
      return { bytes, version: versionOf(bytes) };
    },

    /** Compare, then rename, under the key's lock: every conditional writer of the key takes it. */
    putIf: (key, bytes, version) => locked(key, async () => {
      if (versionOf(await readBytes(key)) !== version) return false;
      await placed(key, bytes, (tmp, dest) => rename(tmp, dest));
      return true;
    }),

    removeIf: (key, version) => locked(key, async () => {
      if (versionOf(await readBytes(key)) !== version) return false;
      await rm(pathOf(key), { force: true });
      return true;
    }),

    removeWhen: (key, test) => locked(key, async () => {
      const bytes = await readBytes(key);
      if (!bytes || !test(bytes)) return false;
      await removeFile(pathOf(key));
      return true;
    }),

    // Synchronous, as readMany: prune and verify stat one file per stored item, and a promise each
    // costs several times the stat itself; one stat of a local file blocks for microseconds.
    stat: (key) => orNull(async () => {
      const s = statSync(pathOf(key));
      return { size: s.size, modified: s.mtimeMs };
    }),

    // The warm blob path: one stat, one await; the kernel sends the file.
    serve: (key) => {
      const path = pathOf(key);
      return stat(path).then((s) => ({ size: s.size, file: Bun.file(path) }), nullIfAbsent);
    },

    remove: (key) => removeFile(pathOf(key)),

    async space() {
      const s = await statfs(root);
      // bavail: what a process without root may still write (the reserved blocks are not ours).
      return { total: s.blocks * s.bsize, free: s.bavail * s.bsize };
    },

    async *list(prefix, sizes) {
      if (!sizes) return yield* keysUnder(prefix);
      // With sizes (the store walk, 100,000s of files) the listing is names only, each stat'ed
      // anyway: a Dirent and four path strings per file made a 100,000-image walk peak at 250 MiB.
      const names = await orNull(() => readdir(pathOf(prefix), { recursive: true }));
      if (!names) return;
      // Relative names sort as their keys do (one common prefix); keys are made a batch at a time.
      names.sort();
      for (let i = 0; i < names.length; i += STAT_BATCH) {
        const batch = names.slice(i, i + STAT_BATCH).map((n) => prefix + (sep === "/" ? n : n.split(sep).join("/")));
        // Synchronously, a batch at a time (as readMany): a promise per file costs more than its stat.
        // -1: removed meanwhile, or a directory (a names-only listing has them too).
        await new Promise((r) => setImmediate(r));
        const got = batch.map((k) => sizeOf(pathOf(k)));
        for (const [j, key] of batch.entries()) if (got[j]! >= 0) yield { key, size: got[j]! };
      }
    },

    async openWriter(key) {
      const dest = pathOf(key);
      const file = await openScratch(tmpDir, 0o644, key);
      return {
        write: async (chunk, position) => file.write(chunk, position),
        readAt: file.readAt,
        async publish() {
          await file.sync();
          await mkdir(dirname(dest), { recursive: true });
          await rename(file.path, dest);
          file.published(async (position, length) => new Uint8Array(await Bun.file(dest).slice(position, position + length).arrayBuffer()));
        },
        drop: () => file.discard(),
        release: () => file.close(),
      } satisfies WriterBackend;
    },
  };
}
