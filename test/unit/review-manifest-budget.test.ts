// Review of issue 18 A2/A3: the byte budget for large or unannounced manifests was one FIFO queue
// for every upstream with no time limit, so a hostile upstream dripping unannounced manifests held
// every other upstream's large manifests for as long as it liked. Now a wait for the budget ends
// after pullTimeout (a 503 "busy"), and client-named upstreams have a budget of their own.
import { expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createCache } from "../../src/cache/index.ts";
import { createRegistry } from "../../src/registry/router.ts";
import { createFsStore } from "../../src/store/fs.ts";
import { createUpstreams } from "../../src/upstream/client.ts";
import { quietLog } from "../helpers/registry.ts";

const MANIFEST = new TextEncoder().encode(JSON.stringify({
  schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
  config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: `sha256:${"a".repeat(64)}`, size: 2 }, layers: [],
}));
const TYPE = "application/vnd.oci.image.manifest.v1+json";

async function race(evilListed: boolean) {
  const pullTimeoutMs = 400;
  const f = (async (input: string | URL) => {
    const url = new URL(String(input));
    if (url.hostname === "good.test") {
      // Chunked (no Content-Length), as some registries send manifests and referrers.
      return new Response(new ReadableStream({ start: (c) => (c.enqueue(MANIFEST), c.close()) }), { headers: { "content-type": TYPE } });
    }
    // evil.test: chunked, one byte now and then, never complete: read until the deadline.
    return new Response(new ReadableStream<Uint8Array>({
      start(c) {
        const t = setInterval(() => {
          try {
            c.enqueue(new Uint8Array([32]));
          } catch {
            clearInterval(t);
          }
        }, 50);
        setTimeout(() => clearInterval(t), 5000);
      },
    }), { headers: { "content-type": TYPE } });
  }) as unknown as typeof fetch;
  const upstreams = createUpstreams({
    registries: [{ name: "good.test", scheme: "http" }, ...(evilListed ? [{ name: "evil.test", scheme: "http" as const }] : [])],
    timeoutMs: pullTimeoutMs, fetch: f, lookup: async () => [],
  });
  const root = mkdtempSync(join(tmpdir(), "ocireg-review-"));
  const store = createFsStore(root);
  await store.init();
  const cache = createCache({ store, upstreams, airGapped: false, revalidateAfterMs: 60_000, pullTimeoutMs, log: quietLog });
  const handler = createRegistry({ cache, defaultNs: "good.test", log: quietLog });
  const get = (p: string) => handler(new Request(`http://cache.test${p}`, { headers: { Accept: TYPE } }));

  const hostile = Array.from({ length: 12 }, (_, i) => get(`/v2/evil.test/x/manifests/t${i}`));
  await Bun.sleep(20);
  const started = performance.now();
  const healthy = await get("/v2/good.test/x/manifests/latest");
  const ms = performance.now() - started;
  const statuses = await Promise.all(hostile.map((p) => p.then((r) => r.status)));
  return { healthy: healthy.status, ms, statuses, pullTimeoutMs };
}

test("a listed hostile upstream's slow unannounced manifests hold another listed one at most one pullTimeout", async () => {
  const r = await race(true);
  // Both listed share one budget: the healthy pull is answered, served or a clear 503 "busy",
  // within one pullTimeout for the budget and one for the upstream; it never waits without end.
  expect([200, 503]).toContain(r.healthy);
  expect(r.ms).toBeLessThan(2 * r.pullTimeoutMs + 100);
  // The hostile requests that waited got a clear answer, not an endless wait.
  expect(r.statuses.every((s) => s === 503 || s === 504 || s === 502)).toBe(true);
}, 20_000);

test("a client-named hostile upstream's large manifests never queue ahead of a listed upstream's", async () => {
  const r = await race(false);
  expect(r.healthy).toBe(200);
  expect(r.ms).toBeLessThan(r.pullTimeoutMs);
}, 20_000);
