// Pulling a whole image (load, preload) fans out a few at a time over what an upstream lists, refuses
// an index listing thousands, and names the part that failed (issue 18 item 3).
import { describe, expect, test } from "bun:test";
import { digestOf } from "../../src/oci/digest.ts";
import { OCI_INDEX, OCI_MANIFEST } from "../../src/oci/mediatypes.ts";
import { createByteBudget } from "../../src/cache/bounded.ts";
import { missingContent } from "../../src/cache/closure.ts";
import { CacheError } from "../../src/cache/errors.ts";
import { MAX_INDEX_MANIFESTS } from "../../src/cache/manifests.ts";
import { makeIndex } from "../helpers/images.ts";
import { createTestRegistry } from "../helpers/registry.ts";

const target = { upstream: "up.test", repository: "app" };
const fakeDigest = (i: number) => digestOf(new TextEncoder().encode(`child ${i}`));

/** An index listing `n` platform manifests that do not exist. */
function hugeIndex(n: number): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({
    schemaVersion: 2, mediaType: OCI_INDEX,
    manifests: Array.from({ length: n }, (_, i) => ({ mediaType: OCI_MANIFEST, digest: fakeDigest(i), size: 500, platform: { os: "linux", architecture: "amd64" } })),
  }));
}

/** Counts requests in flight by kind; each answer waits `ms` first. */
function gauge(ms: number) {
  const now = { manifests: 0, blobs: 0 };
  const peak = { manifests: 0, blobs: 0 };
  return {
    peak,
    async hold(kind: "manifests" | "blobs") {
      now[kind]++;
      peak[kind] = Math.max(peak[kind], now[kind]);
      await Bun.sleep(ms);
      now[kind]--;
    },
  };
}

/** An intercept that may wait, then answer normally (undefined); the fake awaits whatever it returns. */
const waiting = (f: (req: Request) => Promise<Response | undefined>) => f as (req: Request) => Promise<Response>;

const failureOf = (p: Promise<unknown>) => p.then(() => null, (e: unknown) => e as Error);

describe("load and preload fan out a few at a time", () => {
  test(`an index listing more than ${MAX_INDEX_MANIFESTS} manifests is refused with the count and the limit, no child fetched`, async () => {
    const r = await createTestRegistry();
    const bytes = hugeIndex(20_000);
    r.upstream.intercept = (req) => new URL(req.url).pathname === "/v2/app/manifests/huge"
      ? new Response(bytes, { headers: { "Content-Type": OCI_INDEX } })
      : undefined;
    const err = await failureOf(r.cache.pullImage(target, "huge", "all"));
    expect(err).toBeInstanceOf(CacheError);
    expect((err as CacheError).failure).toBe("invalid");
    expect(err!.message).toContain("lists 20000 manifests");
    expect(err!.message).toContain(`at most ${MAX_INDEX_MANIFESTS}`);
    expect(r.upstream.log.filter((l) => l.includes("/manifests/sha256:"))).toEqual([]);
  });

  test("platform manifests and blobs of a 40-platform index: at most 4 of each in flight", async () => {
    const r = await createTestRegistry();
    const index = makeIndex(Array.from({ length: 40 }, (_, i) => `arch${i}`));
    r.upstream.add("app", "wide", index);
    const g = gauge(5);
    r.upstream.intercept = waiting(async (req) => {
      const m = /\/(manifests|blobs)\/sha256:/.exec(new URL(req.url).pathname);
      if (m) await g.hold(m[1] as "manifests" | "blobs");
      return undefined;
    });
    const result = await r.cache.pullImage(target, "wide", "all");
    expect(result.images).toBe(40);
    expect(result.blobs).toBe(80);
    expect(g.peak.manifests).toBeGreaterThan(1);
    expect(g.peak.manifests).toBeLessThanOrEqual(4);
    expect(g.peak.blobs).toBeLessThanOrEqual(4);
  });

  test("a platform manifest that fails is named with its cause; children not yet started are not fetched", async () => {
    const r = await createTestRegistry();
    const index = makeIndex(Array.from({ length: 40 }, (_, i) => `arch${i}`));
    r.upstream.add("app", "wide", index);
    const bad = index.children[1]!.digest;
    r.upstream.intercept = waiting(async (req) => {
      const path = new URL(req.url).pathname;
      if (path.endsWith(bad)) return new Response("down", { status: 503 });
      if (path.includes("/manifests/sha256:")) await Bun.sleep(5);
      return undefined;
    });
    const err = await failureOf(r.cache.pullImage(target, "wide", "all"));
    expect(err).toBeInstanceOf(CacheError);
    expect((err as CacheError).failure).toBe("unreachable");
    expect(err!.message).toContain(`platform manifest ${bad} (linux/arch1)`);
    expect(err!.message).toContain("HTTP 503");
    expect(r.upstream.log.filter((l) => l.includes("/manifests/sha256:")).length).toBeLessThan(10);
  });

  test("an upstream's platform text is shown with control characters escaped", async () => {
    const r = await createTestRegistry();
    const bytes = new TextEncoder().encode(JSON.stringify({
      schemaVersion: 2, mediaType: OCI_INDEX,
      manifests: [{ mediaType: OCI_MANIFEST, digest: fakeDigest(1), size: 500, platform: { os: "linux\u001b[2J", architecture: "amd64" } }],
    }));
    r.upstream.intercept = (req) => new URL(req.url).pathname === "/v2/app/manifests/esc"
      ? new Response(bytes, { headers: { "Content-Type": OCI_INDEX } })
      : undefined;
    const err = await failureOf(r.cache.pullImage(target, "esc", "all"));
    expect(err!.message).toContain("linux\\u001b[2J/amd64");
    expect(err!.message).not.toContain("\u001b");
  });

  test("checking a stored index of 5,000 platform manifests reads the store a few at a time", async () => {
    const r = await createTestRegistry();
    const bytes = hugeIndex(5000);
    const digest = digestOf(bytes);
    await r.store.writeManifest(digest, bytes);
    let now = 0;
    let peak = 0;
    const read = r.store.readManifest.bind(r.store);
    r.store.readManifest = async (d) => {
      now++;
      peak = Math.max(peak, now);
      try {
        return await read(d);
      } finally {
        now--;
      }
    };
    expect(await missingContent(r.store, digest)).toEqual([`every platform manifest of ${digest}`]);
    expect(peak).toBeLessThanOrEqual(8);
  });
});

describe("the byte budget for large manifests", () => {
  test("takes beyond the budget wait, first come first served; one larger than it runs alone", async () => {
    const budget = createByteBudget(10);
    const order: string[] = [];
    const a = (await budget.take(6))!;
    const b = budget.take(6).then((r) => (order.push("b"), r!));
    const c = budget.take(20).then((r) => (order.push("c"), r!));
    await Bun.sleep(5);
    expect(order).toEqual([]);
    a();
    (await b)();
    (await c)();
    expect(order).toEqual(["b", "c"]);
    const d = (await budget.take(10))!;
    d();
    d();
    expect(await Promise.race([budget.take(10).then(() => "granted"), Bun.sleep(5).then(() => "waiting")])).toBe("granted");
  });

  test("a take that waits longer than its time gives up, and lets smaller takes behind it through", async () => {
    const budget = createByteBudget(10);
    const held = (await budget.take(8))!;
    const big = budget.take(10, 30);
    const small = budget.take(2, 1000);
    expect(await big).toBeNull();
    const s = await small;
    expect(typeof s).toBe("function");
    held();
    s!();
  });
});
