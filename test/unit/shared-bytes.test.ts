// The bytes readers of one download share in memory: the right bytes at every position, one read
// of the file per block for readers behind, and memory bounded whatever readers lag.
import { describe, expect, test } from "bun:test";
import { Download } from "../../src/cache/download.ts";
import { BLOCK, MemoryBudget, SharedBytes } from "../../src/cache/shared-bytes.ts";
import { digestOf } from "../../src/oci/digest.ts";
import { createMemoryStore } from "../../src/store/memory.ts";

const MiB = 1024 * 1024;

/** A blob of `size` bytes and a "file" of it that counts its reads. */
function fileOf(size: number) {
  const bytes = new Uint8Array(size).map((_, i) => (i * 7 + (i >> 12)) & 255);
  const reads: number[] = [];
  const readAt = async (position: number, into: Uint8Array) => {
    reads.push(position);
    const part = bytes.subarray(position, position + into.byteLength);
    into.set(part);
    return part.byteLength;
  };
  return { bytes, reads, readAt };
}

/** Feeds `bytes` in chunks of the sizes given (cycling), as a download does. */
function feed(shared: SharedBytes, bytes: Uint8Array, sizes: number[], oldest: () => number, readers: number) {
  let at = 0;
  for (let i = 0; at < bytes.byteLength; i++) {
    const n = Math.min(sizes[i % sizes.length]!, bytes.byteLength - at);
    // A fresh buffer, as an upstream body hands out.
    shared.add(at, bytes.slice(at, at + n), oldest(), readers);
    at += n;
  }
}

describe("shared bytes of a download", () => {
  test("every reader gets the blob's bytes, from memory or from the file, never past its limit", async () => {
    for (const readers of [1, 3]) {
      const f = fileOf(5 * MiB + 123);
      const budget = new MemoryBudget(64 * MiB);
      const shared = new SharedBytes(f.readAt, budget);
      // A reader held at 100 keeps the front from being dropped as it is passed.
      feed(shared, f.bytes, [65536, 1000, 300_000, 7], () => 100, readers);
      for (const [pos, end] of [[0, 10], [100, 5 * MiB], [3 * MiB - 5, 3 * MiB + 5], [5 * MiB, 5 * MiB + 123]] as const) {
        let at = pos;
        while (at < end) {
          const piece = await shared.get(at, end, f.bytes.byteLength);
          expect(piece.byteLength).toBeGreaterThan(0);
          expect(at + piece.byteLength).toBeLessThanOrEqual(end);
          expect(piece).toEqual(f.bytes.subarray(at, at + piece.byteLength));
          at += piece.byteLength;
        }
      }
      expect(budget.used).toBeLessThanOrEqual(4 * BLOCK + 4 * BLOCK);
      shared.clear();
      expect(budget.used).toBe(0);
    }
  });

  test("several readers at the front get everything that arrived in one piece, gathered from small chunks", async () => {
    const f = fileOf(3 * MiB);
    const shared = new SharedBytes(f.readAt, new MemoryBudget(64 * MiB));
    feed(shared, f.bytes.subarray(0, 800_000), [16_384], () => 0, 32);
    const piece = await shared.get(0, 800_000, 800_000);
    expect(piece.byteLength).toBe(800_000);
    expect(piece).toEqual(f.bytes.subarray(0, 800_000));
    expect(f.reads).toEqual([]);
  });

  test("readers behind the front read each block of the file once between them", async () => {
    const f = fileOf(8 * MiB);
    const shared = new SharedBytes(f.readAt, new MemoryBudget(64 * MiB));
    // Nobody reads yet: nothing is kept, every byte is in the file.
    feed(shared, f.bytes, [65536], () => Infinity, 0);
    const positions = Array.from({ length: 32 }, () => 0);
    for (let round = 0; round < 8; round++) {
      await Promise.all(positions.map(async (pos, i) => {
        const piece = await shared.get(pos, f.bytes.byteLength, f.bytes.byteLength);
        expect(piece).toEqual(f.bytes.subarray(pos, pos + piece.byteLength));
        positions[i] = pos + piece.byteLength;
      }));
      shared.trim(Math.min(...positions));
    }
    expect(positions.every((p) => p === f.bytes.byteLength)).toBe(true);
    expect(f.reads.length).toBe(8);
  });

  test("a reader that never moves holds a bounded front, and the process-wide budget caps every download together", () => {
    const budget = new MemoryBudget(6 * MiB);
    const downloads = Array.from({ length: 4 }, () => {
      const f = fileOf(16 * MiB);
      const shared = new SharedBytes(f.readAt, budget);
      return { f, shared };
    });
    for (const { f, shared } of downloads) {
      feed(shared, f.bytes, [65536, 250_000], () => 0, 2);
      expect(budget.used).toBeLessThanOrEqual(budget.limit);
    }
    expect(budget.used).toBeGreaterThan(0);
    for (const { shared } of downloads) shared.clear();
    expect(budget.used).toBe(0);
  });
});

describe("a download with a reader that stops reading", () => {
  test("keeps at most its caps in memory while a fast reader gets the whole blob, and frees them at the end", async () => {
    const store = createMemoryStore();
    const size = 24 * MiB;
    const bytes = new Uint8Array(size).map((_, i) => (i * 31) & 255);
    const digest = digestOf(bytes);
    const budget = new MemoryBudget(32 * MiB);
    let peak = 0;
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        for (let at = 0; at < size; at += 65536) c.enqueue(bytes.slice(at, at + 65536));
        c.close();
      },
    });
    let ended!: () => void;
    const end = new Promise<void>((r) => (ended = r));
    const d = Download.start({ digest, total: size, body, writer: await store.createBlobWriter(digest, { size }), idleTimeoutMs: 10_000, memory: budget, onEnd: () => ended() });
    const stuck = d.stream(0, null).getReader();
    await stuck.read(); // one piece, then nothing more
    const fast = d.stream(0, null).getReader();
    let got = 0;
    const hash = new Bun.CryptoHasher("sha256");
    for (let c = await fast.read(); !c.done; c = await fast.read()) {
      hash.update(c.value);
      got += c.value.byteLength;
      peak = Math.max(peak, budget.used);
    }
    expect(got).toBe(size);
    expect(`sha256:${hash.digest("hex")}`).toBe(digest);
    await end;
    expect(peak).toBeLessThanOrEqual(8 * BLOCK);
    await stuck.cancel();
    expect(budget.used).toBe(0);
  });
});
