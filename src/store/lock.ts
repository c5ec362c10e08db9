// Calls for one key one after another (perKey), and a lock per key for the directory driver's
// conditional writes (compare, then rename): within this process that queue, across processes on
// one directory (serve, load, prune) a lock file created with O_EXCL under tmp/locks/. A holder
// keeps it for one small read and write, so a lock file whose process is gone, or one older than
// STALE_MS, is broken.
import { mkdir, readFile, rm, stat, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ownerIsGone, processOwner } from "./owner.ts";
import { StoreError } from "./types.ts";

/** A lock file this old belongs to a holder that hung or died without its process being gone (a container restart). */
const STALE_MS = 10_000;
/** How long a caller waits for a lock held by a live process before it gives up. */
const WAIT_MS = 30_000;

export type KeyLock = <T>(key: string, f: () => Promise<T>) => Promise<T>;

/** Runs calls for one key one after another (any keys at once), whether they succeed or fail. */
export function perKey(): KeyLock {
  const queues = new Map<string, Promise<unknown>>();
  return <T>(key: string, f: () => Promise<T>): Promise<T> => {
    const run = (queues.get(key) ?? Promise.resolve()).then(f);
    const tail = run.catch(() => {});
    queues.set(key, tail);
    void tail.then(() => {
      if (queues.get(key) === tail) queues.delete(key);
    });
    return run;
  };
}

export function keyLocks(dir: string): KeyLock {
  const queued = perKey();

  async function acquire(path: string): Promise<void> {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      try {
        // One call (open O_EXCL, write, close): an eviction takes thousands of these locks.
        await writeFile(path, processOwner(), { flag: "wx", mode: 0o644 });
        return;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === "ENOENT") {
          await mkdir(dir, { recursive: true });
          continue;
        }
        if (code !== "EEXIST") throw err;
      }
      const [holder, s] = await Promise.all([readFile(path, "utf8").catch(() => null), stat(path).catch(() => null)]);
      if (!s) continue; // released meanwhile
      if ((holder && ownerIsGone(holder)) || Date.now() - s.mtimeMs > STALE_MS) {
        await rm(path, { force: true });
        continue;
      }
      if (Date.now() > deadline) {
        throw new StoreError("unavailable", `${path} is held by process ${holder || "unknown"} for over ${WAIT_MS / 1000} s; remove it if no ociregistry process runs on this store`);
      }
      await Bun.sleep(1 + Math.random() * 4);
    }
  }

  return <T>(key: string, f: () => Promise<T>): Promise<T> => {
    const path = join(dir, `${new Bun.CryptoHasher("sha256").update(key).digest("hex").slice(0, 40)}.lock`);
    return queued(key, async () => {
      await acquire(path);
      try {
        return await f();
      } finally {
        await unlink(path).catch(() => {}); // broken as stale by another process meanwhile: nothing to release
      }
    });
  };
}
