// Replicas on one shared store, in-process: the eviction lease (one holder, taken over once
// expired), each replica's downloads seen by the others while fresh, a walk that races with this
// process's own changes recounted instead of thrown away, and a run left to another replica that
// does not mark the store full. The compiled binary on Ceph RGW is test/e2e/s3-bounded.test.ts.
import { describe, expect, test } from "bun:test";
import { digestOf } from "../../src/oci/digest.ts";
import { createQuota, type SharedQuota } from "../../src/cache/quota.ts";
import { createReplicas, FRESH_MS, LEASE, LEASE_MS } from "../../src/cache/replicas.ts";
import { createMemoryStore } from "../../src/store/memory.ts";
import { createUsage, walkStore } from "../../src/store/usage.ts";
import { StoreError, type Store } from "../../src/store/types.ts";
import { quietLog } from "../helpers/registry.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const shared = (store: Store): Store => ({ ...store, shared: true });

function setup() {
  let t = Date.now();
  const clock = { now: () => t, advance: (ms: number) => (t += ms) };
  const warnings: string[] = [];
  const store = shared(createMemoryStore(clock.now));
  const replica = () => createReplicas(store, clock.now, (m) => void warnings.push(m));
  return { store, clock, warnings, replica };
}

async function putBlob(store: Store, text: string) {
  const bytes = enc(text);
  const w = await store.createBlobWriter(digestOf(bytes));
  await w.write(bytes);
  await w.commit();
  await w.release();
  return bytes.byteLength;
}

describe("the eviction lease", () => {
  test("one replica holds it at a time; released, the next one takes it", async () => {
    const { replica, store } = setup();
    const [a, b] = [replica(), replica()];
    expect(a.owner).not.toBe(b.owner);
    const held = await a.acquire();
    expect(held).not.toBeNull();
    expect(await b.acquire()).toBeNull();
    expect(JSON.parse(new TextDecoder().decode((await store.readState(LEASE))!)).owner).toBe(a.owner);
    await held!.release();
    expect(await store.readState(LEASE)).toBeNull();
    const next = await b.acquire();
    expect(next).not.toBeNull();
    await next!.release();
  });

  test("a lease past its expiry (its holder died mid-run) is taken over, with a warning", async () => {
    const { replica, clock, warnings } = setup();
    const [dead, b] = [replica(), replica()];
    expect(await dead.acquire()).not.toBeNull(); // never released
    clock.advance(LEASE_MS - 1000);
    expect(await b.acquire()).toBeNull();
    clock.advance(2000);
    const taken = await b.acquire();
    expect(taken).not.toBeNull();
    expect(warnings.some((w) => w.includes(`taking over the eviction lease of ${dead.owner}`))).toBe(true);
    await taken!.release();
  });

  test("waitFree returns once the holder releases", async () => {
    const { replica } = setup();
    const [a, b] = [replica(), replica()];
    const held = (await a.acquire())!;
    let freed = false;
    const waiting = b.waitFree(5000).then(() => (freed = true));
    await Bun.sleep(300);
    expect(freed).toBe(false);
    await held.release();
    await waiting;
    expect(freed).toBe(true);
  });
});

describe("downloads published to the other replicas", () => {
  test("replica B sees what A downloads while A's file is fresh, never its own, and nothing once A stops", async () => {
    const { replica, clock, store } = setup();
    const [a, b] = [replica(), replica()];
    const downloading = new Set([digestOf(enc("layer one"))]);
    const stop = a.publish(() => downloading);
    await Bun.sleep(1300);
    expect([...(await b.busyElsewhere())]).toEqual([...downloading]);
    expect((await a.busyElsewhere()).size).toBe(0);
    clock.advance(FRESH_MS + 1000); // A stopped refreshing (its clock says so too): stale
    expect((await b.busyElsewhere()).size).toBe(0);
    await stop();
    expect(await Array.fromAsync(store.listState("replicas"))).toEqual([]);
  });

  test("the file goes when the downloads end", async () => {
    const { replica, store } = setup();
    const a = replica();
    const downloading = new Set([digestOf(enc("layer"))]);
    const stop = a.publish(() => downloading);
    await Bun.sleep(1200);
    expect(await Array.fromAsync(store.listState("replicas"))).toEqual([`${a.owner}.json`]);
    downloading.clear();
    await Bun.sleep(1200);
    expect(await Array.fromAsync(store.listState("replicas"))).toEqual([]);
    await stop();
  });
});

describe("counting a shared store", () => {
  test("a walk that raced with this process's commits and removals is recounted, not dropped", async () => {
    const { store } = setup();
    const kept = await putBlob(store, "before the walk");
    const gone = digestOf(enc("removed during the walk"));
    await putBlob(store, "removed during the walk");
    // The walk lists the blobs, and while it does this process commits one and removes another.
    let usage!: ReturnType<typeof createUsage>;
    let raced = false;
    let walks = 0;
    const slow: Store = {
      ...store,
      async *listContentSizes(kind) {
        if (kind === "blobs") walks++;
        for await (const c of store.listContentSizes(kind)) {
          yield c;
          if (!raced && kind === "blobs") {
            raced = true;
            await putBlob(usage.store, "committed during the walk");
            await usage.store.removeContent("blobs", gone);
          }
        }
      },
    };
    usage = createUsage(slow);
    const r = await usage.reconcile();
    expect(raced).toBe(true);
    expect(r).not.toBeNull();
    expect(walks).toBe(1); // taken, not walked again as a quiet walk would be
    const truth = await walkStore(store);
    expect(usage.figures.bytes).toBe(truth.bytes);
    expect(usage.figures.blobs).toBe(2);
    expect(truth.bytes).toBe(kept + enc("committed during the walk").byteLength);
  });
});

describe("a run left to another replica", () => {
  const figures = { bytes: 1000, blobs: 1, manifests: 0, tags: 0 };
  const quotaWith = (sharedQuota: SharedQuota) => {
    const store = createMemoryStore();
    const usage = { ...createUsage(store), figures };
    return createQuota({
      bounds: { maxSize: { bytes: 1000 } }, usage, store, log: quietLog, now: Date.now,
      evict: { pinned: () => false, busy: () => new Set(), orphanGraceMs: 0 }, shared: sharedQuota,
    });
  };

  test("while another replica keeps the lease, a commit that does not fit is refused but the store is not marked full", async () => {
    let waits = 0;
    const quota = quotaWith({ lease: async () => null, waitFree: async () => void waits++, recount: async () => {} });
    const err = await quota.admit(10, "blobs").then(() => null, (e) => e);
    expect(err).toBeInstanceOf(StoreError);
    expect(waits).toBe(2);
    expect(quota.snapshot().full).toBe(false);
  });

  test("when the count under the lease shows room, nothing is evicted and the commit goes in", async () => {
    let released = 0;
    const quota = quotaWith({
      lease: async () => ({ release: async () => void released++ }), waitFree: async () => {},
      recount: async () => void (figures.bytes = 500),
    });
    const settle = await quota.admit(10, "blobs");
    settle();
    expect(released).toBe(1);
    expect(quota.snapshot().full).toBe(false);
  });
});
