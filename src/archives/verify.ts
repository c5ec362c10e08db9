// Checks a blob of an archive against its digest before it is served as that digest: one streamed
// hash pass per blob of a file version (path, device, inode, size, mtime), whose verdict is
// remembered in a bounded map; concurrent requests share the pass, and few passes run at once.
import pLimit from "p-limit";
import { stat } from "node:fs/promises";
import { createDigester, parseDigest } from "../oci/digest.ts";
import { BoundedMap } from "../lib/bounded-map.ts";
import { stampOf, type BlobLocation } from "./layout.ts";

/**
 * `ok`: the bytes match; `mismatch`: they do not (the archive is damaged); `changed`: the file
 * changed or vanished during the pass, so nothing is known (and nothing remembered).
 */
export type Verdict = "ok" | "mismatch" | "changed";

export interface BlobVerifierOptions {
  /** Verdicts remembered (least recently used out first). */
  maxVerdicts?: number;
  /** Hash passes running at once; others wait. */
  concurrency?: number;
}

export function createBlobVerifier(opts: BlobVerifierOptions = {}) {
  const verdicts = new BoundedMap<string, "ok" | "mismatch">(opts.maxVerdicts ?? 100_000);
  const running = new Map<string, Promise<Verdict>>();
  const limit = pLimit(opts.concurrency ?? 4);

  async function pass(path: string, stamp: string, digest: string, at: BlobLocation): Promise<Verdict> {
    const d = parseDigest(digest);
    if (!d) return "mismatch";
    const hasher = createDigester(d.algorithm);
    let seen = 0;
    try {
      // Streamed through a small buffer: a 5 GiB layer costs one read of the file, not its size in memory.
      for await (const chunk of Bun.file(path).slice(at.offset, at.offset + at.size).stream()) {
        hasher.update(chunk);
        seen += chunk.byteLength;
      }
      // The bytes hashed must be the version the verdict is remembered for.
      if (stampOf(await stat(path)) !== stamp) return "changed";
    } catch {
      return "changed";
    }
    return seen === at.size && hasher.digest() === digest ? "ok" : "mismatch";
  }

  return {
    /** Whether the bytes at `at` in the file version `stamp` at `path` are `digest`. */
    check(path: string, stamp: string, digest: string, at: BlobLocation): Promise<Verdict> {
      const key = `${path}\n${stamp}\n${digest}\n${at.offset}`;
      const known = verdicts.get(key);
      if (known) return Promise.resolve(known);
      let p = running.get(key);
      if (!p) {
        p = limit(() => pass(path, stamp, digest, at))
          .then((v) => {
            if (v !== "changed") verdicts.set(key, v);
            return v;
          })
          .finally(() => running.delete(key));
        running.set(key, p);
      }
      return p;
    },
  };
}
