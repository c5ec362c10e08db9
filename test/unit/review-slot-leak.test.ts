// Review of issue 18 A2: a slot is held "until the body is read or dropped". When the store cannot
// open a blob writer (disk full, too many open files, an S3 hiccup), the upstream's blob response is
// neither read nor cancelled: its slot is never released, and after maxUpstreamConnections such
// failures the upstream answers 503 to every request until the process restarts.
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

test("a blob writer that cannot be opened does not leak the upstream slot", async () => {
  const blobs = ["one", "two", "three"].map((s) => new TextEncoder().encode(s));
  const f = (async (input: string | URL) => {
    const url = new URL(String(input));
    const b = blobs.find((x) => url.pathname.endsWith(digestOf(x)))!;
    return new Response(b, { headers: { "content-length": String(b.byteLength) } });
  }) as unknown as typeof fetch;
  const upstreams = createUpstreams({
    registries: [{ name: "up.test", scheme: "http" }], timeoutMs: 300, fetch: f,
    connectionsPerUpstream: 2, connectionsTotal: 6, lookup: async () => [],
  });
  const root = mkdtempSync(join(tmpdir(), "ocireg-review-"));
  const base = createFsStore(root);
  await base.init();
  let failWrites = 2;
  const store = {
    ...base,
    async createBlobWriter(digest: string, opts?: { size?: number }) {
      if (failWrites-- > 0) throw Object.assign(new Error("EMFILE: too many open files"), { code: "EMFILE" });
      return base.createBlobWriter(digest, opts);
    },
  };
  const cache = createCache({ store, upstreams, airGapped: false, revalidateAfterMs: 60_000, pullTimeoutMs: 300, log: quietLog });
  const handler = createRegistry({ cache, defaultNs: "up.test", log: quietLog });
  const get = (p: string) => handler(new Request(`http://cache.test${p}`));

  expect((await get(`/v2/up.test/x/blobs/${digestOf(blobs[0]!)}`)).status).toBeGreaterThanOrEqual(500);
  expect((await get(`/v2/up.test/x/blobs/${digestOf(blobs[1]!)}`)).status).toBeGreaterThanOrEqual(500);
  await Bun.sleep(50);
  expect(upstreams.status().active).toEqual({});
  // The store works again: the next pull must succeed.
  const ok = await get(`/v2/up.test/x/blobs/${digestOf(blobs[2]!)}`);
  expect(ok.status).toBe(200);
  expect(await ok.text()).toBe("three");
});
