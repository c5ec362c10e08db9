// A bounded local disk copy of S3 blobs, sent with sendfile: a warm blob read from it costs the
// kernel one copy of each byte less than one streamed from S3 through the cache (docs/s3.md).
// A copy is only ever a file whose bytes matched their digest and size before it got its name.
import { randomUUID } from "node:crypto";
import { closeSync, mkdirSync, openSync, renameSync, rmSync, statSync } from "node:fs";
import { link, rm } from "node:fs/promises";
import { join } from "node:path";
import type { BunFile } from "bun";
import { createDigester, parseDigest } from "../../oci/digest.ts";
import { parseContentKey } from "../keys.ts";
import { writeAllAt } from "../scratch.ts";

/** Copies filled from S3 at once (each is one client's stream teed into a file). */
const FILLS = 2;
/** The index's bound whatever the byte bound: ~200 bytes of memory each. */
const MAX_ENTRIES = 10_000;
/**
 * A fill lasts as long as its client reads: one that reads slowly would hold a fill slot and its
 * reserved bytes (a 2 GiB blob: the whole bound) for as long as it likes. Past this time, plus its
 * size at this rate, the fill is given up (the client's stream goes on from S3) and the next read
 * of the blob tries again.
 */
const FILL_GRACE_MS = 30_000;
const FILL_MIN_BYTES_PER_S = 4 * 1024 * 1024;

export interface LocalCopyOptions {
  /** Why a copy was not kept. */
  debug?: (message: string) => void;
  /** Told the bytes and copies held whenever they change (metrics). */
  changed?: (bytes: number, copies: number) => void;
  now?: () => number;
  /** The fill's time before its size counts (default 30 s). */
  fillGraceMs?: number;
}

export interface LocalCopies {
  /** The copy of `key` when this process holds a whole one of `size` bytes (marked as just served); else null. */
  find(key: string, size: number): BunFile | null;
  /** Keeps the scratch file at `path`, already verified, as the copy of `key` (a hard link: no second write). */
  adopt(key: string, path: string, size: number): Promise<void>;
  /**
   * `open()` (the whole object, `size` bytes) passed through, and teed into a file kept as the copy
   * only once the stream ended with `size` bytes matching the key's digest. At most one fill per key
   * and FILLS at once; otherwise, or when `size` cannot fit, `open()` as it is.
   */
  fill(key: string, size: number, open: () => ReadableStream<Uint8Array>): ReadableStream<Uint8Array>;
  /** Removes the copy of `key` (and drops a fill of it in progress). */
  drop(key: string): Promise<void>;
  /** Bytes and copies held now. */
  figures(): { bytes: number; copies: number };
}

interface Fill {
  cancelled: boolean;
}

export function createLocalCopies(dir: string, maxBytes: number, o: LocalCopyOptions = {}): LocalCopies {
  const debug = o.debug ?? (() => {});
  const changed = o.changed ?? (() => {});
  const now = o.now ?? Date.now;
  /** Copies by key, least recently served first (a Map keeps insertion order; a hit re-inserts). */
  const index = new Map<string, { path: string; size: number }>();
  const fills = new Map<string, Fill>();
  let held = 0;
  /** Bytes promised to fills in progress: their temp files count against the bound too. */
  let reserved = 0;
  let made = false;

  /**
   * The copy's name: the digest's hex, so a name can never hold another blob's bytes, and a blob sent
   * from it carries the directory store's headers (Bun names a file's hex in Content-Disposition).
   */
  const pathOf = (key: string) => {
    const c = parseContentKey(key);
    if (c?.kind !== "blobs") return null;
    if (!made) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      made = true;
    }
    return join(dir, c.digest.slice(c.digest.indexOf(":") + 1));
  };

  const forget = (key: string) => {
    const e = index.get(key);
    if (!e) return null;
    index.delete(key);
    held -= e.size;
    changed(held, index.size);
    return e.path;
  };

  /** Evicts the least recently served copies until `size` more bytes fit; false when they never can. */
  function room(size: number): boolean {
    if (size > maxBytes) return false;
    for (const key of index.keys()) {
      if (held + reserved + size <= maxBytes && index.size < MAX_ENTRIES) break;
      const path = forget(key);
      if (path) rmSync(path, { force: true });
    }
    return held + reserved + size <= maxBytes;
  }

  function keep(key: string, path: string, size: number) {
    forget(key); // a copy made meanwhile had the same bytes: counted once
    index.set(key, { path, size });
    held += size;
    changed(held, index.size);
  }

  return {
    find(key, size) {
      const e = index.get(key);
      if (!e) return null;
      // Gone (removed by hand) or not the object's size (never for content-addressed bytes): not served.
      const s = statSync(e.path, { throwIfNoEntry: false });
      if (!s || s.size !== size || e.size !== size) {
        const path = forget(key);
        if (path) rmSync(path, { force: true });
        return null;
      }
      index.delete(key);
      index.set(key, e);
      return Bun.file(e.path);
    },

    async adopt(key, scratch, size) {
      const path = pathOf(key);
      if (!path || index.has(key) || fills.has(key) || !room(size)) return;
      held += size; // reserved before the link: a concurrent room() must see it
      try {
        await link(scratch, path);
      } catch (err) {
        // EEXIST: a copy of the same bytes is already there (counted when it was kept).
        held -= size;
        if ((err as { code?: string }).code !== "EEXIST") debug(`no local copy of ${key}: ${(err as Error).message}`);
        return;
      }
      held -= size;
      keep(key, path, size);
    },

    fill(key, size, open) {
      const path = pathOf(key);
      const digest = parseContentKey(key)?.digest ?? "";
      const d = parseDigest(digest);
      if (!path || !d || index.has(key) || fills.has(key) || fills.size >= FILLS || !room(size)) return open();
      const temp = join(dir, `.fill-${randomUUID()}`);
      let fd: number;
      try {
        fd = openSync(temp, "w", 0o600);
      } catch (err) {
        debug(`no local copy of ${key}: ${(err as Error).message}`);
        return open();
      }
      const fill: Fill = { cancelled: false };
      fills.set(key, fill);
      reserved += size;
      const hasher = createDigester(d.algorithm);
      let written = 0;
      let ended = false;
      const started = now();
      const until = started + (o.fillGraceMs ?? FILL_GRACE_MS) + (size / FILL_MIN_BYTES_PER_S) * 1000;
      // Also when the client stops reading altogether: no read comes to check the time then.
      const timer = setTimeout(() => {
        if (!ended) debug(`no local copy of ${key}: its client stopped reading at ${written} of ${size} bytes`);
        end(false);
      }, Math.max(0, until - started));
      timer.unref?.();
      /** Closes the temp file and keeps it only when it is whole and verified. */
      const end = (whole: boolean) => {
        if (ended) return;
        ended = true;
        clearTimeout(timer);
        fills.delete(key);
        reserved -= size;
        try {
          closeSync(fd);
        } catch {}
        const got = whole ? hasher.digest() : null;
        if (whole && !fill.cancelled && written === size && got === digest) {
          try {
            renameSync(temp, path);
            keep(key, path, size);
            return;
          } catch (err) {
            debug(`no local copy of ${key}: ${(err as Error).message}`);
          }
        } else if (whole && !fill.cancelled) {
          debug(`local copy of ${key} dropped: ${written} bytes read from S3 hash to ${got}, not ${size} bytes of ${digest}`);
        }
        rmSync(temp, { force: true });
      };
      const reader = open().getReader();
      return new ReadableStream<Uint8Array>({
        async pull(ctl) {
          let r: Awaited<ReturnType<typeof reader.read>>;
          try {
            r = await reader.read();
          } catch (err) {
            end(false);
            throw err;
          }
          if (r.done) {
            ctl.close();
            end(true);
            return;
          }
          const chunk = r.value;
          if (!ended && now() > until) {
            debug(`no local copy of ${key}: its client read ${written} of ${size} bytes in ${Math.round((now() - started) / 1000)} s, too slowly to hold a fill`);
            end(false);
          }
          if (!ended) {
            try {
              hasher.update(chunk);
              writeAllAt(fd, chunk, written);
              written += chunk.byteLength;
            } catch (err) {
              // A full disk ends the copy, never the client's stream.
              debug(`no local copy of ${key}: ${(err as Error).message}`);
              end(false);
            }
          }
          ctl.enqueue(chunk);
        },
        async cancel(reason) {
          end(false);
          await reader.cancel(reason);
        },
      });
    },

    async drop(key) {
      const f = fills.get(key);
      if (f) f.cancelled = true;
      const path = forget(key);
      if (path) await rm(path, { force: true });
    },

    figures: () => ({ bytes: held, copies: index.size }),
  };
}
