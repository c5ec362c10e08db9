// The local file a blob's bytes go to while downloaded (the directory driver renames it into
// place; the S3 driver keeps it beside the multipart upload): written synchronously, read back
// by readers that join the download, and read from where the bytes were published once released.
import { randomUUID } from "node:crypto";
import { readSync, writeSync } from "node:fs";
import { mkdir, open, readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { ownerIsGone } from "./owner.ts";
import { StoreError } from "./types.ts";

/** Loose temp files of the older layout (before per-process directories) older than this are left overs. */
const LEGACY_TMP_AGE_MS = 60 * 60_000;

/**
 * Removes, under `tmpRoot`, the temp directories of processes that are gone (a kill -9 leaves its
 * scratch copies, relay spools and lock files there) and old loose temp files; answers how many.
 */
export async function removeLeftoverTemps(tmpRoot: string): Promise<number> {
  let removed = 0;
  for (const name of await readdir(tmpRoot).catch(() => [] as string[])) {
    const path = join(tmpRoot, name);
    const s = await stat(path).catch(() => null);
    if (!s) continue;
    const stale = s.isDirectory() ? ownerIsGone(name) : Date.now() - s.mtimeMs > LEGACY_TMP_AGE_MS;
    if (!stale) continue;
    await rm(path, { force: true, recursive: true });
    removed++;
  }
  return removed;
}

/**
 * Writes all of `chunk` at `position`, synchronously: one chunk into the page cache takes tens of
 * microseconds, a fraction of a promise round trip per chunk, which dominated a cold download.
 */
export function writeAllAt(fd: number, chunk: Uint8Array, position: number): void {
  let off = 0;
  while (off < chunk.byteLength) off += writeSync(fd, chunk, off, chunk.byteLength - off, position + off);
}

/** A fresh path in `dir` (created when missing) for one in-progress write. */
export async function scratchPath(dir: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  return join(dir, randomUUID());
}

export interface ScratchFile {
  readonly path: string;
  write(chunk: Uint8Array, position: number): void;
  /** Bytes written so far; after close, from where the bytes were published (or "not-found"). */
  readAt(position: number, into: Uint8Array): Promise<number>;
  sync(): Promise<void>;
  /** Says where the bytes are once published, for readers that come after close(). */
  published(read: (position: number, length: number) => Promise<Uint8Array>): void;
  /** Closes the file handle (safe twice). */
  close(): Promise<void>;
  /** Closes and removes the file. */
  discard(): Promise<void>;
}

export async function openScratch(dir: string, mode: number, what: string): Promise<ScratchFile> {
  const path = await scratchPath(dir);
  const fh = await open(path, "w+", mode);
  let closed = false;
  let readPublished: ((position: number, length: number) => Promise<Uint8Array>) | null = null;
  const close = async () => {
    if (closed) return;
    closed = true;
    await fh.close();
  };
  return {
    path,
    write: (chunk, position) => writeAllAt(fh.fd, chunk, position),
    async readAt(position, into) {
      if (closed && readPublished) {
        // A reader that joined as the writer was released: the bytes are in place now.
        const bytes = await readPublished(position, into.byteLength);
        into.set(bytes);
        return bytes.byteLength;
      }
      if (closed) throw new StoreError("not-found", `the writer of ${what} was released`);
      // The handle stays valid through a rename, and through a prune's unlink after it. Read
      // synchronously, as written: bytes just written come from the page cache, a copy that costs
      // less than the thread-pool hop and the promise of an asynchronous read.
      return readSync(fh.fd, into, 0, into.byteLength, position);
    },
    sync: () => fh.sync(),
    published(read) {
      readPublished = read;
    },
    close,
    async discard() {
      await close().catch(() => {});
      await rm(path, { force: true });
    },
  };
}
