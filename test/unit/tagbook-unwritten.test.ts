// Unwritten pull times kept as small entries, not whole records (issue 24 item 3): a record that
// leaves memory before the flush comes back with its times, the flush writes every one (checked
// times only for the digest checked), and the tag book holds far less per pulled tag than a record.
import { describe, expect, test } from "bun:test";
import { heapStats } from "bun:jsc";
import { digestOf } from "../../src/oci/digest.ts";
import { createTagBook, type RecordedManifest } from "../../src/cache/records.ts";
import { createLayoutStore } from "../../src/store/layout.ts";
import { memoryDriver } from "../../src/store/memory.ts";
import type { TagRecord } from "../../src/store/types.ts";

const up = "up.test:5000";
const manifest = (s: string): RecordedManifest => {
  const bytes = new TextEncoder().encode(JSON.stringify({ schemaVersion: 2, s }));
  return { digest: digestOf(bytes), mediaType: "application/vnd.oci.image.manifest.v1+json", bytes };
};
const T0 = Date.parse("2030-01-01T00:00:00Z");
const iso = (ms: number) => new Date(ms).toISOString();

function setup() {
  const store = createLayoutStore(memoryDriver());
  let t = T0;
  const book = createTagBook(store, () => t, (m) => { throw new Error(m); });
  return { store, book, advance: (ms: number) => (t += ms), now: () => t };
}

/** Records written straight to the store (as a previous run left them): `n` tags over a few repositories. */
async function seed(store: ReturnType<typeof setup>["store"], n: number) {
  const m = manifest("x");
  for (let i = 0; i < n; i++) {
    const rec: TagRecord = { upstream: up, repository: `team/app${i % 7}`, tag: `v${i}`, digest: m.digest, mediaType: m.mediaType, size: m.bytes.byteLength, created: iso(T0), lastPulled: iso(T0), checked: iso(T0) };
    await store.writeTag(rec);
  }
}

describe("unwritten pull times", () => {
  test("a record that left memory before the flush comes back with its times, and the flush writes them", async () => {
    const { store, book, advance } = setup();
    await seed(store, 10_050);
    const first = { upstream: up, repository: "team/app0" };
    advance(5000);
    book.pulled((await book.get(first, "v0"))!, true);
    advance(1000);
    book.pulled((await book.get(first, "v0"))!, false);
    // 10,049 other records read push v0's record out of memory (10,000 kept).
    for (let i = 1; i < 10_050; i++) await book.get({ upstream: up, repository: `team/app${i % 7}` }, `v${i}`);
    const again = (await book.get(first, "v0"))!;
    expect(again.lastPulled).toBe(iso(T0 + 6000));
    expect(again.checked).toBe(iso(T0 + 5000));
    expect(await book.flush()).toBe(1);
    const disk = (await store.readTag(up, "team/app0", "v0"))!;
    expect([disk.lastPulled, disk.checked]).toEqual([iso(T0 + 6000), iso(T0 + 5000)]);
    expect(await book.flush()).toBe(0);
  });

  test("a check is written only for the digest it checked; pins by digest and ported upstreams round-trip", async () => {
    const { store, book, advance } = setup();
    const target = { upstream: up, repository: "team/app" };
    const one = manifest("one");
    const two = manifest("two");
    await book.record(target, "v1", one, null);
    await book.pin(target, two);
    advance(2000);
    book.pulled((await book.get(target, "v1"))!, true);
    book.pulled((await book.get(target, two.digest))!, false);
    // Another process moves the tag meanwhile: the check was of the old digest.
    await store.updateTag({ ...target, tag: "v1" }, (r) => ({ ...r!, digest: two.digest }));
    expect(await book.flush()).toBe(2);
    const v1 = (await store.readTag(up, "team/app", "v1"))!;
    expect(v1.digest).toBe(two.digest);
    expect(v1.lastPulled).toBe(iso(T0 + 2000));
    expect(v1.checked).toBe(iso(T0));
    expect((await store.readTag(up, "team/app", two.digest))!.lastPulled).toBe(iso(T0 + 2000));
  });

  test("20,000 tags pulled once cost the tag book under 400 bytes each (a kept record is ~620)", async () => {
    const { store, book, advance } = setup();
    await seed(store, 20_000);
    advance(1000);
    const heap = () => (Bun.gc(true), heapStats().heapSize);
    const before = heap();
    for (let i = 0; i < 20_000; i++) book.pulled((await book.get({ upstream: up, repository: `team/app${i % 7}` }, `v${i}`))!, false);
    const per = (heap() - before) / 20_000;
    console.log(`tag book: ${per.toFixed(0)} B per pulled tag`);
    expect(per).toBeLessThan(400);
    // Written by the flushes (one starts by itself at 10,000 unwritten).
    await book.flush();
    for (const i of [0, 9_999, 19_999]) expect((await store.readTag(up, `team/app${i % 7}`, `v${i}`))!.lastPulled).toBe(iso(T0 + 1000));
  });
});
