// One upstream fetch per blob across replicas, in-process: the download lease (one owner, the
// others follow it, taken over once expired or when its owner cannot serve), two caches on one
// shared store relaying through the signed internal endpoint, the signature's refusals, and the
// `replicas` config keys. The compiled binary on Ceph RGW is test/e2e/s3-flight.test.ts.
import { describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createCache } from "../../src/cache/index.ts";
import { createFlightLeases, FLIGHT_LEASE_MS, flightName } from "../../src/cache/flight-leases.ts";
import { ConfigError, resolveConfig } from "../../src/config/resolve.ts";
import { maskedConfig } from "../../src/config/show.ts";
import { createRegistry } from "../../src/registry/router.ts";
import { internalEndpoint, peerLink, signedBySecret, INTERNAL_PREFIX } from "../../src/server/replica-link.ts";
import { createMemoryStore } from "../../src/store/memory.ts";
import type { Store } from "../../src/store/types.ts";
import { createUpstreams } from "../../src/upstream/client.ts";
import { createFakeUpstream } from "../helpers/fake-upstream.ts";
import { makeImage } from "../helpers/images.ts";
import { quietLog } from "../helpers/registry.ts";

const SECRET = "sixteen-chars-at-least-0123";

function leases() {
  let t = Date.now();
  const clock = { now: () => t, advance: (ms: number) => (t += ms) };
  const store: Store = { ...createMemoryStore(clock.now), shared: true };
  const replica = (url: string) => createFlightLeases(store, { self: () => url, now: clock.now, warn: () => {} });
  return { store, clock, replica };
}

describe("the download lease", () => {
  test("one replica owns a blob's download; the others are told where it serves it; released, the next one owns it", async () => {
    const { replica } = leases();
    const [a, b] = [replica("http://a:1"), replica("http://b:1")];
    const owned = await a.claim("up.test", "sha256:aa");
    expect(owned.kind).toBe("owner");
    const followed = await b.claim("up.test", "sha256:aa");
    expect(followed).toMatchObject({ kind: "peer", url: "http://a:1" });
    // Another blob, or the same digest from another upstream, is another lease.
    expect((await b.claim("other.test", "sha256:aa")).kind).toBe("owner");
    if (owned.kind === "owner") await owned.lease.release();
    expect((await b.claim("up.test", "sha256:aa")).kind).toBe("owner");
  });

  test("a lease past its expiry is taken over; an owner that cannot serve is replaced at once, a changed lease followed", async () => {
    const { replica, clock, store } = leases();
    const [a, b, c] = [replica("http://a:1"), replica("http://b:1"), replica("http://c:1")];
    await a.claim("up.test", "sha256:bb");
    clock.advance(FLIGHT_LEASE_MS + 1);
    expect((await b.claim("up.test", "sha256:bb")).kind).toBe("owner");
    // c follows b; b dies (its lease stays): c takes over the lease it saw.
    const seen = await c.claim("up.test", "sha256:bb");
    if (seen.kind !== "peer") throw new Error("expected to follow b");
    expect(seen.url).toBe("http://b:1");
    expect((await c.takeOver("up.test", "sha256:bb", seen.seen)).kind).toBe("owner");
    // a, still holding what it read of b's lease, now follows c instead of removing c's lease.
    expect(await a.takeOver("up.test", "sha256:bb", seen.seen)).toMatchObject({ kind: "peer", url: "http://c:1" });
    expect(JSON.parse(new TextDecoder().decode((await store.readState(flightName("up.test", "sha256:bb")))!)).url).toBe("http://c:1");
  });
});

describe("the internal endpoint's signature", () => {
  const req = (authorization: string) => new Request("http://x/p", { headers: { authorization } });
  test("accepts the shared secret's signature, refuses another secret, an old timestamp and other schemes", async () => {
    let sent: Request | null = null;
    const link = peerLink(SECRET, () => "", 1000, (async (url: string, init: RequestInit) => (sent = new Request(url, init), new Response("x"))) as typeof fetch);
    await link.open("http://owner:1", "up.test", `sha256:${"a".repeat(64)}`, 0, null);
    const path = new URL(sent!.url).pathname;
    expect(path.startsWith(INTERNAL_PREFIX)).toBe(true);
    expect(signedBySecret(SECRET, sent!, path)).toBe(true);
    expect(signedBySecret(`${SECRET}x`, sent!, path)).toBe(false);
    expect(signedBySecret(SECRET, sent!, `${path}x`)).toBe(false);
    expect(signedBySecret(SECRET, sent!, path, Date.now() + 600_000)).toBe(false);
    expect(sent!.headers.get("authorization")).not.toContain(SECRET);
    for (const a of ["", `Bearer ${SECRET}`, `OciregistryReplica t=1,s=${"0".repeat(64)}`]) expect(signedBySecret(SECRET, req(a), "/p")).toBe(false);
  });
});

describe("two replicas on one store", () => {
  test("a cold blob asked of both at once is fetched upstream once; each client gets its bytes, the other's from the owner", async () => {
    const store: Store = { ...createMemoryStore(), shared: true };
    const up = createFakeUpstream();
    const img = makeImage({ content: 3 * 1024 * 1024, uncompressed: true });
    up.add("library/x", "v1", img);
    const layer = img.blobs[1]!;
    // The upstream's body arrives slowly, so the second request finds the download running.
    up.intercept = (req) => (req.url.includes("/blobs/") ? Bun.sleep(100).then(() => undefined as unknown as Response) : undefined);
    const endpoints = new Map<string, (req: Request, path: string) => Promise<Response>>();
    const fetchPeer = (async (url: string, init: RequestInit) => {
      const r = new Request(url, init);
      const u = new URL(r.url);
      return endpoints.get(u.origin)!(r, u.pathname);
    }) as typeof fetch;
    const replica = (origin: string) => {
      const upstreams = createUpstreams({ registries: [{ name: "up.test", scheme: "http" }], timeoutMs: 5000, fetch: up.fetch, lookup: async () => [] });
      const cache = createCache({ store, upstreams, airGapped: false, revalidateAfterMs: 60_000, pullTimeoutMs: 5000, log: quietLog, peers: peerLink(SECRET, () => origin, 5000, fetchPeer) });
      endpoints.set(origin, internalEndpoint(SECRET, cache));
      return createRegistry({ cache, defaultNs: "up.test", log: quietLog });
    };
    const [a, b] = [replica("http://a.test"), replica("http://b.test")];
    const path = `http://cache.test/v2/library/x/blobs/${layer.digest}`;
    const [ra, rb] = await Promise.all([a(new Request(path)), Bun.sleep(20).then(() => b(new Request(path)))]);
    expect([ra.status, rb.status]).toEqual([200, 200]);
    expect(new Uint8Array(await ra.arrayBuffer())).toEqual(layer.bytes);
    expect(new Uint8Array(await rb.arrayBuffer())).toEqual(layer.bytes);
    expect(up.log.filter((l) => l === `GET /v2/library/x/blobs/${layer.digest}`)).toHaveLength(1);
  });
});

describe("the replicas config keys", () => {
  const dir = mkdtempSync(join(tmpdir(), "ocireg-replicas-cfg-"));
  const file = (text: string) => {
    const f = join(dir, `${Math.random()}.yml`);
    writeFileSync(f, text);
    return f;
  };
  const s3 = "store: s3://bucket/p\ns3:\n  endpoint: http://s3.test\n  accessKeyId: k\n  secretAccessKey: s\n";
  test("the secret from the file or the environment, masked when shown; refused without S3, short, or unset", () => {
    const c = resolveConfig({ configFile: file(`${s3}replicas:\n  secretFromEnv: S\n  advertiseFromEnv: U\n`) }, { S: SECRET, U: "http://10.0.0.5:8080" });
    expect(c.replicas).toEqual({ secret: SECRET, advertise: "http://10.0.0.5:8080" });
    expect(JSON.stringify(maskedConfig(c))).not.toContain(SECRET);
    for (const [text, env, key] of [
      [`replicas:\n  secret: ${SECRET}\n`, {}, "replicas"],
      [`${s3}replicas:\n  secret: short\n`, {}, "replicas.secret"],
      [`${s3}replicas:\n  secretFromEnv: S\n`, {}, "replicas.secretFromEnv"],
      [`${s3}replicas:\n  secret: ${SECRET}\n  secretFromEnv: S\n`, { S: SECRET }, "replicas"],
      [`${s3}replicas:\n  secret: ${SECRET}\n  advertiseFromEnv: U\n`, { U: "not a url" }, "replicas.advertiseFromEnv"],
    ] as const) {
      let err: unknown;
      try {
        resolveConfig({ configFile: file(text) }, env);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message.startsWith(key)).toBe(true);
    }
  });
});
