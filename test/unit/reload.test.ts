// Config reload pieces: which keys apply and which need a restart, a refused reload changing
// nothing, upstream credentials replaced without resetting circuits, every logger's level.
import { describe, expect, test } from "bun:test";
import { resolveConfig } from "../../src/config/resolve.ts";
import type { Config } from "../../src/config/schema.ts";
import { createLogger } from "../../src/log.ts";
import { configChanges, createReloader } from "../../src/server/reload.ts";
import { createUpstreams } from "../../src/upstream/client.ts";
import { ConfigError } from "../../src/config/error.ts";
import { imagePattern } from "../../src/oci/pattern.ts";
import { makeImage } from "../helpers/images.ts";
import { createTestRegistry } from "../helpers/registry.ts";

const base = (): Config => resolveConfig({ imagePath: "/tmp/x" }, {});
const quiet = createLogger({ level: "error", format: "text" }).log;

describe("configChanges", () => {
  test.each([
    [{ logLevel: "debug" }, ["logLevel"], []],
    [{ users: [{ user: "a", password: "b" }] }, ["users"], []],
    [{ maxSize: { bytes: 10 }, pinned: ["docker.io/library/*:*"] }, ["pinned", "maxSize"], []],
    [{ port: 9000, host: "127.0.0.1" }, [], ["port", "host"]],
    [{ pullTimeoutMs: 5 }, [], ["pullTimeout"]],
    [{ healthPort: 9001, s3: { bucket: "b" } }, [], ["health", "store/s3"]],
    // A plain port cannot turn into a TLS one in place.
    [{ serverTlsConfig: { cert: "c", key: "k", clientAuth: "none" } }, [], ["serverTlsConfig"]],
  ] as const)("%j → applied %j, restart %j", (change, applied, restart) => {
    const next = { ...base(), ...change } as Config;
    expect(configChanges(base(), next)).toEqual({ applied: [...applied], restart: [...restart] });
  });

  test("a certificate that changes while TLS stays on is applied", () => {
    const on = { ...base(), serverTlsConfig: { cert: "c1", key: "k", clientAuth: "none" as const } };
    expect(configChanges(on, { ...on, serverTlsConfig: { ...on.serverTlsConfig, cert: "c2" } }).applied).toEqual(["serverTlsConfig"]);
  });
});

describe("createReloader", () => {
  test("a config that fails validation or cannot be applied is refused and the running config stays", async () => {
    let running = base();
    const applied: string[][] = [];
    const sources = [
      () => {
        throw new ConfigError("logLevel", "must be one of error, warn, info, debug, trace");
      },
      () => ({ ...running, logLevel: "debug" as const }),
      () => ({ ...running, logLevel: "trace" as const }),
    ];
    let i = 0;
    const r = createReloader({
      running: () => running, log: quiet, reread: () => sources[i++]!(),
      apply: (next, c) => {
        if (next.logLevel === "trace") throw new Error("the certificate does not match its key\nmore");
        applied.push(c.applied);
        running = next;
      },
    });
    expect(await r.reload("test")).toEqual({ ok: false, error: "logLevel: must be one of error, warn, info, debug, trace" });
    expect(await r.reload("test")).toEqual({ ok: true, changes: { applied: ["logLevel"], restart: [] } });
    expect(await r.reload("test")).toEqual({ ok: false, error: "cannot apply the config: the certificate does not match its key" });
    expect(applied).toEqual([["logLevel"]]);
    expect(running.logLevel).toBe("debug");
  });
});

describe("upstream reconfigure", () => {
  test("new credentials are used for the next request, removed ones never again; circuits are kept", async () => {
    const seen: Array<string | null> = [];
    const fetch = (async (input: string | URL | Request, init?: RequestInit) => {
      const req = new Request(input as string, init);
      const host = new URL(req.url).host;
      seen.push(req.headers.get("authorization"));
      if (host === "down.test") throw new Error("connection refused");
      return req.headers.get("authorization") ? new Response("ok") : new Response("{}", { status: 401, headers: { "WWW-Authenticate": 'Basic realm="r"' } });
    }) as typeof globalThis.fetch;
    const basic = (p: string) => `Basic ${Buffer.from(`alice:${p}`).toString("base64")}`;
    const u = createUpstreams({
      registries: [{ name: "reg.test", scheme: "https", credentials: { user: "alice", password: "one" } }, { name: "down.test", scheme: "https" }],
      timeoutMs: 1000, lookup: async () => [], fetch, breaker: { threshold: 1 },
    });
    const req = { method: "GET" as const, repository: "a", path: "manifests/v1" };
    expect((await u.request("reg.test", req)).status).toBe(200);
    await u.request("down.test", req).catch(() => {});
    expect(u.status().open.map((b) => b.upstream)).toEqual(["down.test"]);

    u.reconfigure([{ name: "reg.test", scheme: "https", credentials: { user: "alice", password: "two" } }, { name: "down.test", scheme: "https" }], ["reg.test", "down.test"]);
    seen.length = 0;
    await u.request("reg.test", req);
    expect(seen.filter(Boolean)).toEqual([basic("two")]);
    expect(u.status().open.map((b) => b.upstream)).toEqual(["down.test"]);

    u.reconfigure([], []);
    seen.length = 0;
    const after = await u.request("reg.test", req).catch((e: Error) => e);
    expect(after).toBeInstanceOf(Error);
    expect(seen.filter(Boolean)).toEqual([]);
    expect(u.listed("reg.test")).toBe(false);
  });
});

describe("logger level", () => {
  test("setLevel reaches loggers tagged before the change", () => {
    const { log, setLevel } = createLogger({ level: "info", format: "text" });
    const child = log.withTag("a").withTag("b");
    expect(child.level).toBe(3);
    setLevel("debug");
    expect([log.level, child.level, log.withTag("c").level]).toEqual([4, 4, 4]);
    setLevel("error");
    expect(child.level).toBe(0);
  });
});

describe("store bounds on a reload", () => {
  test("a lowered maxSize evicts down to it; pins given with it are kept; lifting the bounds ends them", async () => {
    const images = Array.from({ length: 4 }, () => makeImage({ content: 50 * 1024, uncompressed: true }));
    const r = await createTestRegistry();
    images.forEach((img, i) => r.upstream.add(`app${i}`, "v1", img));
    for (let i = 0; i < 4; i++) {
      for (const path of [`/v2/app${i}/manifests/v1`, ...images[i]!.blobs.map((b) => `/v2/app${i}/blobs/${b.digest}`)]) {
        const res = await r.request(path);
        expect(res.status).toBe(200);
        await res.arrayBuffer();
      }
      await Promise.all((await r.cache.blobs.active()).map((d) => d.settled()));
      r.clock.advance(1000);
    }
    await r.cache.flush();
    expect(r.cache.quota.bounded).toBe(false);
    const total = r.cache.usage.figures.bytes;
    r.cache.rebound({ maxSize: { bytes: Math.floor(total / 2) } }, [imagePattern("up.test/app0:*")]);
    expect(r.cache.quota.bounded).toBe(true);
    await r.cache.quota.evict();
    expect(r.cache.usage.figures.bytes).toBeLessThanOrEqual(total / 2);
    const kept = (await Array.fromAsync(r.cache.store.allTags())).map((t) => t.repository);
    // app0 is the least recently pulled, but pinned by the new patterns.
    expect(kept).toContain("app0");
    expect(kept).not.toContain("app1");
    r.cache.rebound({}, []);
    expect(r.cache.quota.snapshot().maxBytes).toBeNull();
    expect(r.cache.quota.bounded).toBe(false);
  });
});
