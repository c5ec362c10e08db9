// test.failing: passes while the hole is open; drop `.failing` once it is fixed.
// Review of issue 18 A2/A3: the process-wide byte budget for large or unannounced manifests is one
// FIFO queue for every upstream with no time limit. A hostile upstream whose manifests come without
// Content-Length and drip until pullTimeout keeps two of them holding it; each further request of
// its own queues another pullTimeout/2 in front of every other upstream, whose pull then waits far
// beyond pullTimeout (no 503, nothing ever answers "busy").
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

test.failing("a hostile upstream's slow unannounced manifests do not hold a healthy upstream's pull past pullTimeout", async () => {
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
    registries: [{ name: "good.test", scheme: "http" }, { name: "evil.test", scheme: "http" }],
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
  await Promise.all(hostile);
  expect(healthy.status).toBe(200);
  // One pullTimeout for the upstream, one for a fair wait: anything longer is starvation.
  expect(ms).toBeLessThan(2 * pullTimeoutMs);
}, 20_000);
