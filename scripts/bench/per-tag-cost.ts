// What each per-tag structure of a running cache costs, in bytes of JS heap per entry (20,000
// entries each, measured after a full GC). Usage: bun scripts/bench/per-tag-cost.ts
import { heapStats } from "bun:jsc";
import { BoundedMap } from "../../src/lib/bounded-map.ts";
import { ManifestParts, partKey } from "../../src/cache/parts.ts";
import { ManifestMemory } from "../../src/cache/memory.ts";
import { recordName, parseTagRecord, serializeTagRecord } from "../../src/store/record.ts";
import { digestOf } from "../../src/oci/digest.ts";
import { createTagBook } from "../../src/cache/records.ts";
import { createMemoryStore } from "../../src/store/memory.ts";
const N = 20_000;
const heap = () => (Bun.gc(true), heapStats().heapSize + heapStats().extraMemorySize);
const up = "registry.example.com";
const dig = (i: number) => digestOf(new TextEncoder().encode(String(i)));
const measure = (label: string, make: () => unknown) => {
  const before = heap();
  const keep = make();
  const after = heap();
  console.log(`${label}: ${((after - before) / N).toFixed(0)} B per tag`);
  return keep;
};
const recs = Array.from({ length: N }, (_, i) => serializeTagRecord({ upstream: up, repository: `team/app${Math.floor(i / 100)}`, tag: `v${i % 100}.0.1`, digest: dig(i), mediaType: "application/vnd.oci.image.manifest.v1+json", size: 1234, created: new Date().toISOString(), lastPulled: new Date().toISOString(), checked: new Date().toISOString() }));
const keeps: unknown[] = [];
keeps.push(measure("TagBook record (parsed TagRecord + recordName key + BoundedMap entry)", () => {
  const m = new BoundedMap<string, unknown>(N);
  for (const r of recs) { const t = parseTagRecord(r)!; m.set(recordName(t), t); }
  return m;
}));
{
  // The TagBook as the cache keeps records: read from a store (parsed), then pulled once (dirty).
  const store = createMemoryStore();
  for (const r of recs) await store.writeTag(parseTagRecord(r)!);
  const book = createTagBook(store, Date.now, () => {});
  const before = heap();
  for (const r of recs) {
    const t = parseTagRecord(r)!;
    book.pulled((await book.get({ upstream: t.upstream, repository: t.repository }, t.tag))!, false);
  }
  console.log(`TagBook record as kept (read from the store, pulled once): ${((heap() - before) / N).toFixed(0)} B per tag`);
  keeps.push(book);
}
keeps.push(measure("ManifestParts entry (upstream repository digest key, flags)", () => {
  const p = new ManifestParts(N);
  for (let i = 0; i < N; i++) { const k = partKey({ upstream: up, repository: `team/app${Math.floor(i / 100)}` }, dig(i)); p.cover(k); p.remember(k); }
  return p;
}));
keeps.push(measure("two separate maps as before (covered + remembered)", () => {
  const a = new BoundedMap<string, true>(N), b = new BoundedMap<string, true>(N);
  for (let i = 0; i < N; i++) { a.set(partKey({ upstream: up, repository: `team/app${Math.floor(i / 100)}` }, dig(i)), true); b.set(partKey({ upstream: up, repository: `team/app${Math.floor(i / 100)}` }, dig(i)), true); }
  return [a, b];
}));
keeps.push(measure("declaredSizes entry (upstream digest key, size), per blob", () => {
  const m = new BoundedMap<string, number>(N);
  for (let i = 0; i < N; i++) m.set(`${up} ${dig(i + N)}`, 1000 + i);
  return m;
}));
keeps.push(measure("ManifestMemory entry (a 450-byte manifest)", () => {
  const m = new ManifestMemory(1 << 30);
  for (let i = 0; i < N; i++) m.set({ digest: dig(i + 2 * N), mediaType: "application/vnd.oci.image.manifest.v1+json", bytes: new Uint8Array(450) });
  return m;
}));
keeps.push(measure("tag index (TagPlace + name key + sorted names + lower-case names)", () => {
  const places = new Map<string, unknown>();
  for (const r of recs) { const t = parseTagRecord(r)!; places.set(recordName(t), { upstream: t.upstream, repository: t.repository, tag: t.tag }); }
  const names = [...places.keys()].sort();
  return [places, names, names.map((n) => n.toLowerCase())];
}));
void keeps;
