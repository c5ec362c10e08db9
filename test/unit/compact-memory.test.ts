// The compact in-memory structures that keep per-tag memory low: one flag map for covered and
// remembered manifests, BoundedMap's peek, manifest memory counting each entry's overhead.
import { describe, expect, test } from "bun:test";
import { ManifestParts, partKey } from "../../src/cache/parts.ts";
import { MANIFEST_ENTRY_BYTES, ManifestMemory } from "../../src/cache/memory.ts";
import { BoundedMap } from "../../src/lib/bounded-map.ts";

const t = { upstream: "up.test", repository: "team/app" };
const d = (i: number) => `sha256:${String(i).padStart(64, "0")}`;

describe("ManifestParts", () => {
  test("covered and remembered are separate flags of one entry", () => {
    const p = new ManifestParts(10);
    const k = partKey(t, d(1));
    expect(p.covered(k)).toBe(false);
    expect(p.remember(k)).toBe(true);
    expect(p.remember(k)).toBe(false);
    expect(p.covered(k)).toBe(false);
    p.cover(k);
    expect(p.covered(k)).toBe(true);
    expect(p.size).toBe(1);
    p.uncover(k);
    expect(p.covered(k)).toBe(false);
    // Still remembered: uncovering does not make its declarations be read again.
    expect(p.remember(k)).toBe(false);
    expect(p.size).toBe(1);
  });

  test("an entry only covered goes when uncovered; keys differ by upstream and repository", () => {
    const p = new ManifestParts(10);
    p.cover(partKey(t, d(1)));
    expect(p.covered(partKey({ ...t, repository: "team/other" }, d(1)))).toBe(false);
    expect(p.covered(partKey({ ...t, upstream: "other.test" }, d(1)))).toBe(false);
    p.uncover(partKey(t, d(1)));
    p.uncover(partKey(t, d(2))); // never known: nothing happens
    expect(p.size).toBe(0);
  });

  test("stays within its bound, the oldest entry out first", () => {
    const p = new ManifestParts(100);
    for (let i = 0; i < 1000; i++) p.cover(partKey(t, d(i)));
    expect(p.size).toBe(100);
    expect(p.covered(partKey(t, d(999)))).toBe(true);
    expect(p.covered(partKey(t, d(0)))).toBe(false);
  });
});

describe("BoundedMap.peek", () => {
  test("reads without moving the entry in the eviction order", () => {
    const m = new BoundedMap<string, number>(2);
    m.set("a", 1).set("b", 2);
    expect(m.peek("a")).toBe(1);
    m.set("c", 3);
    expect(m.peek("a")).toBeUndefined();
    expect(m.peek("b")).toBe(2);
    expect(m.peek("zzz")).toBeUndefined();
  });
});

describe("ManifestMemory", () => {
  test("counts each entry's overhead against the budget, not only its bytes", () => {
    const size = 100;
    const budget = 10 * (size + MANIFEST_ENTRY_BYTES);
    const mem = new ManifestMemory(budget);
    for (let i = 0; i < 50; i++) mem.set({ digest: d(i), mediaType: "x", bytes: new Uint8Array(size) });
    const kept = Array.from({ length: 50 }, (_, i) => mem.get(d(i))).filter(Boolean).length;
    expect(kept).toBe(10);
    expect(mem.get(d(49))).toBeDefined();
  });
});
