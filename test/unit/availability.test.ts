// No client can stop the cache (issue 18 A): encoded bodies are never decoded, upstream caps are
// per resolved identity inside one fair process-wide budget, waiting for a slot is never an
// upstream's failure, and a drip is cut at the minimum transfer rate.
import { describe, expect, test } from "bun:test";
import { brotliCompressSync, gzipSync } from "node:zlib";
import { mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTokenCache } from "../../src/upstream/auth.ts";
import { readBody } from "../../src/upstream/body.ts";
import { createUpstreams } from "../../src/upstream/client.ts";
import { UpstreamError } from "../../src/upstream/errors.ts";
import { identityOf } from "../../src/upstream/identity.ts";
import { createLimiter } from "../../src/upstream/limiter.ts";
import { Download } from "../../src/cache/download.ts";
import { createFsStore } from "../../src/store/fs.ts";
import { digestOf } from "../../src/oci/digest.ts";

const bomb = brotliCompressSync(Buffer.alloc(64 * 1024 * 1024, 32));

describe("encoded upstream bodies", () => {
  test("a token response is fetched as identity, never decoded, and refused when encoded", async () => {
    const asked: RequestInit[] = [];
    const tokens = createTokenCache({
      now: Date.now, timeoutMs: 1000,
      fetch: (async (_u: string, init: RequestInit) => {
        asked.push(init);
        return new Response(bomb, { headers: { "Content-Encoding": "br", "Content-Type": "application/json" } });
      }) as unknown as typeof fetch,
    });
    const err = await tokens.obtain({ upstream: "up.test", realm: new URL("https://auth.test/token"), scope: "repository:x:pull" }).catch((e) => e);
    expect(err).toBeInstanceOf(UpstreamError);
    expect((err as UpstreamError).failure).toBe("protocol");
    expect((err as Error).message).toContain('"br"-encoded');
    expect((asked[0] as { decompress?: boolean }).decompress).toBe(false);
    expect(new Headers(asked[0]!.headers).get("accept-encoding")).toBe("identity");
  });

  test("manifests, tag lists and referrers read with readBody refuse any encoding but identity", async () => {
    const limits = { maxBytes: 4 << 20, idleMs: 1000, deadlineMs: 1000 };
    for (const [enc, body] of [["gzip", gzipSync("{}")], ["br", bomb], ["zstd", new Uint8Array(8)], ["GZIP, br", gzipSync("{}")]] as const) {
      const err = await readBody(new Response(body, { headers: { "Content-Encoding": enc } }), "up.test", "the manifest x", limits).catch((e) => e);
      expect((err as UpstreamError).failure).toBe("protocol");
    }
    const ok = await readBody(new Response("{}", { headers: { "Content-Encoding": "identity" } }), "up.test", "the manifest x", limits);
    expect(new TextDecoder().decode(ok)).toBe("{}");
  });
});

describe("upstream identity", () => {
  test("every spelling of one address is one identity", async () => {
    const none = async () => [] as string[];
    const spellings = ["http://127.0.0.60", "http://2130706492", "http://0x7f00003c", "http://127.60", "http://0177.0.0.60", "http://[::ffff:127.0.0.60]", "http://[::ffff:7f00:3c]:80"];
    const ids = await Promise.all(spellings.map((s) => identityOf(new URL(s), none)));
    expect(new Set(ids)).toEqual(new Set(["127.0.0.60:80"]));
    expect(await identityOf(new URL("https://127.0.0.60"), none)).toBe("127.0.0.60:443");
  });

  test("names that resolve to one address share its identity; unresolvable names keep their own", async () => {
    const lookup = async (h: string) => (h.endsWith(".wild.test") ? ["203.0.113.9"] : Promise.reject(new Error("ENOTFOUND")));
    const a = await identityOf(new URL("https://a.wild.test"), lookup);
    const b = await identityOf(new URL("https://b.wild.test"), lookup);
    expect(a).toBe("203.0.113.9:443");
    expect(b).toBe(a);
    expect(await identityOf(new URL("https://nowhere.test:5000"), lookup)).toBe("nowhere.test:5000");
  });
});

describe("the process-wide budget", () => {
  test("a freed slot goes to the waiting upstream that holds the fewest", async () => {
    const l = createLimiter({ perUpstream: 4, total: 4 });
    const hog = await Promise.all([1, 2, 3, 4].map(() => l.acquire("hog", 1000))) as Array<() => void>;
    const order: string[] = [];
    const more = l.acquire("hog", 1000).then((r) => (order.push("hog"), r));
    const fair = l.acquire("fair", 1000).then((r) => (order.push("fair"), r));
    expect(l.total()).toBe(4);
    hog[0]!();
    await fair;
    expect(order).toEqual(["fair"]);
    expect(l.active("fair")).toBe(1);
    hog[1]!();
    await more;
    expect(order).toEqual(["fair", "hog"]);
    expect(l.total()).toBe(4);
  });

  test("a lane at its own cap does not block others from free budget", async () => {
    const l = createLimiter({ perUpstream: 1, total: 10 });
    expect(typeof (await l.acquire("a", 50))).toBe("function");
    expect(await l.acquire("a", 20)).toBe(false);
    expect(typeof (await l.acquire("b", 50))).toBe("function");
  });
});

describe("starvation through many spellings of one host", () => {
  test("nine spellings share one cap, a healthy upstream keeps its slots, and waiting opens no circuit", async () => {
    const hanging: Array<() => void> = [];
    const f = (async (input: string | URL, init?: RequestInit) => {
      const url = new URL(String(input));
      if (url.hostname === "healthy.test") return new Response("ok");
      // The hostile host answers headers, then never finishes its body.
      return new Response(new ReadableStream({ start: (c) => void hanging.push(() => c.close()) }), { status: 200, headers: { "content-length": "100" } });
    }) as unknown as typeof fetch;
    const up = createUpstreams({
      registries: [{ name: "healthy.test", scheme: "https" }], timeoutMs: 200, fetch: f,
      connectionsPerUpstream: 2, connectionsTotal: 4, lookup: async () => ["192.0.2.10"],
    });
    const spellings = ["127.0.0.60", "2130706492", "0x7f00003c", "127.60", "0177.0.0.60", "[::ffff:127.0.0.60]", "[::ffff:7f00:3c]", "0x7f.0.0.0x3c", "0x7f.0.0.60"];
    const held: Response[] = [];
    const failures: string[] = [];
    await Promise.all(spellings.map((s) => up.request(s, { method: "GET", repository: "x", path: "blobs/sha256:00" })
      .then((r) => void held.push(r), (e: UpstreamError) => void failures.push(e.failure))));
    expect(held.length).toBe(2);
    expect(failures.every((f) => f === "busy")).toBe(true);
    expect(up.status().open).toEqual([]);
    // The budget still has room for the healthy upstream.
    const ok = await up.request("healthy.test", { method: "GET", repository: "x", path: "manifests/v1" });
    expect(await ok.text()).toBe("ok");
    for (const h of hanging) h();
    for (const r of held) await r.arrayBuffer().catch(() => {});
  });
});

/** Runs one download of `data` into a fresh store, its body paced by `drip`, held to `minRate`. */
async function download(data: Uint8Array, drip: (c: ReadableStreamDefaultController<Uint8Array>) => Timer, minRate: { bytesPerSecond: number; windowMs: number }) {
  const root = mkdtempSync(join(tmpdir(), "ocireg-rate-"));
  const store = createFsStore(root);
  await store.init();
  const digest = digestOf(data);
  let timer: Timer | undefined;
  const body = new ReadableStream<Uint8Array>({ start: (c) => void (timer = drip(c)), cancel: () => clearInterval(timer) });
  const writer = await store.createBlobWriter(digest, { size: data.byteLength });
  const started = performance.now();
  const d = await new Promise<Download>((resolve) => Download.start({ digest, total: data.byteLength, body, writer, idleTimeoutMs: 10_000, minRate, onEnd: resolve }));
  clearInterval(timer);
  return { d, ms: performance.now() - started, stored: readdirSync(join(root, "blobs/sha256")) };
}

describe("minimum transfer rate", () => {
  test("a blob body that drips below minTransferRate is cut and nothing is stored", async () => {
    const data = new Uint8Array(100_000).fill(7);
    let i = 0;
    const { d, ms, stored } = await download(data, (c) => setInterval(() => c.enqueue(data.subarray(i, ++i)), 20), { bytesPerSecond: 1000, windowMs: 300 });
    expect(d.error?.message).toContain("minTransferRate");
    expect(ms).toBeLessThan(2000);
    expect(stored).toEqual([]);
  });

  test("a body at a healthy rate completes", async () => {
    const data = new Uint8Array(40_000).fill(9);
    let i = 0;
    const { d } = await download(data, (c) => {
      const t = setInterval(() => {
        c.enqueue(data.subarray(i, i + 1000));
        i += 1000;
        if (i >= data.byteLength) (clearInterval(t), c.close());
      }, 10);
      return t;
    }, { bytesPerSecond: 1000, windowMs: 100 });
    expect(d.error).toBeNull();
    expect(d.done).toBe(true);
  });
});

describe("impossible statuses", () => {
  test("an upstream answering 600, 799 or 999 gets a protocol error and keeps no connection slot", async () => {
    const f = (async (input: string | URL) => {
      const code = Number(new URL(String(input)).pathname.split("/")[2]!.slice(1));
      // Bun's fetch hands such statuses on; only a Response built in JavaScript refuses them.
      return { status: code, statusText: "", ok: false, headers: new Headers(), body: new ReadableStream({ start: (c) => c.close() }) } as unknown as Response;
    }) as unknown as typeof fetch;
    const up = createUpstreams({ registries: [{ name: "odd.test", scheme: "https" }], timeoutMs: 200, fetch: f, lookup: async () => [], connectionsPerUpstream: 2, breaker: { threshold: 1000 } });
    for (let round = 0; round < 3; round++) {
      for (const code of [600, 799, 999]) {
        const err = await up.request("odd.test", { method: "GET", repository: `c${code}`, path: "manifests/v1" }).catch((e) => e);
        expect((err as UpstreamError).failure).toBe("protocol");
      }
    }
    // Nine answers, a cap of two: had one slot leaked, the last ones would have waited and failed "busy".
    expect(up.status().active).toEqual({});
  });
});
