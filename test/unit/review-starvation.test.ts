// Review of issue 18 A2: one hostile host, on a few ports of one public address, drips blob bodies
// just above minTransferRate: its slots are never cut and nothing is released for the fair
// dispatch to hand on. It took the whole budget; now upstreams clients name hold at most half of
// it together, so a listed upstream still gets a slot.
import { expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createCache } from "../../src/cache/index.ts";
import { createRegistry } from "../../src/registry/router.ts";
import { createFsStore } from "../../src/store/fs.ts";
import { createUpstreams } from "../../src/upstream/client.ts";
import { digestOf } from "../../src/oci/digest.ts";
import { quietLog } from "../helpers/registry.ts";

test("a hostile host on three ports holds at most half the upstream budget; a healthy listed upstream is served", async () => {
  const goodBlob = new TextEncoder().encode("healthy layer");
  const goodDigest = digestOf(goodBlob);
  const timers: Timer[] = [];
  const f = (async (input: string | URL) => {
    const url = new URL(String(input));
    if (url.hostname === "good.test") return new Response(goodBlob, { headers: { "content-length": String(goodBlob.byteLength) } });
    // evil.example:<port>: a 100 MB blob sent at ~1.5 KB/s (150 bytes every 100 ms), above the 1 KiB/s minimum.
    return new Response(new ReadableStream<Uint8Array>({
      start(c) {
        const t = setInterval(() => {
          try {
            c.enqueue(new Uint8Array(150));
          } catch {
            clearInterval(t);
          }
        }, 100);
        timers.push(t);
      },
    }), { headers: { "content-length": String(100_000_000) } });
  }) as unknown as typeof fetch;
  const pullTimeoutMs = 800;
  const upstreams = createUpstreams({
    registries: [{ name: "good.test", scheme: "http" }], timeoutMs: pullTimeoutMs, fetch: f,
    // Scaled down from 32 / 192: three identities fill the budget as six fill the real one.
    connectionsPerUpstream: 2, connectionsTotal: 6,
    guard: { policy: "public", resolve: async (h) => (h === "evil.example" ? ["93.184.216.34"] : ["93.184.216.35"]) },
  });
  const root = mkdtempSync(join(tmpdir(), "ocireg-review-"));
  const store = createFsStore(root);
  await store.init();
  const cache = createCache({
    store, upstreams, airGapped: false, revalidateAfterMs: 60_000, pullTimeoutMs, log: quietLog,
    minTransferRate: { bytesPerSecond: 1024, windowMs: 1000 },
  });
  const handler = createRegistry({ cache, defaultNs: "good.test", log: quietLog });
  const get = (p: string) => handler(new Request(`http://cache.test${p}`));

  const held: Response[] = [];
  for (const port of [1001, 1002, 1003]) {
    for (let i = 0; i < 2; i++) {
      const d = `sha256:${String(port * 10 + i).padStart(64, "0")}`;
      held.push(await get(`/v2/evil.example:${port}/x/blobs/${d}`));
    }
  }
  // Half the budget (3 of 6) for client-named upstreams: the rest wait, then get 503.
  expect(held.map((r) => r.status).sort()).toEqual([200, 200, 200, 503, 503, 503]);
  // Three rate windows later the drips still run (above the minimum rate)…
  await Bun.sleep(3000);
  expect((await cache.blobs.active()).length).toBe(3);
  // …and the healthy, listed upstream still gets a slot.
  const healthy = await get(`/v2/good.test/x/blobs/${goodDigest}`);
  for (const t of timers) clearInterval(t);
  for (const r of held) r.body?.cancel().catch(() => {});
  expect(healthy.status).toBe(200);
  // Read to the end: a body never read nor cancelled keeps its download's file open.
  expect(new Uint8Array(await healthy.arrayBuffer())).toEqual(goodBlob);
}, 15_000);
