// Builds the whole request handler in-process over a temp store and a fake upstream.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createCache, type ArchiveSource, type StoreBounds } from "../../src/cache/index.ts";
import { createRegistry } from "../../src/registry/router.ts";
import { createFsStore } from "../../src/store/fs.ts";
import { createUpstreams, type UpstreamSettings } from "../../src/upstream/client.ts";
import { createFakeUpstream } from "./fake-upstream.ts";

export const quietLog = { debug() {}, info() {}, warn() {}, error() {} };

export interface TestRegistryOptions {
  airGapped?: boolean;
  revalidateAfterMs?: number;
  pullTimeoutMs?: number;
  registries?: UpstreamSettings[];
  defaultNs?: string;
  tagPolicies?: Array<{ match: RegExp; revalidateAfterMs: number }>;
  allowUpstream?: (upstream: string) => boolean;
  /** An existing store to use (another test registry's `root`). */
  root?: string;
  /** Consulted before the store and the upstream. */
  archives?: ArchiveSource;
  /** The store's bounds and pinned patterns (eviction). */
  bounds?: StoreBounds;
  pinned?: RegExp[];
}

export async function createTestRegistry(opts: TestRegistryOptions = {}) {
  const root = opts.root ?? mkdtempSync(join(tmpdir(), "ocireg-unit-"));
  const store = createFsStore(root);
  await store.init();
  const upstream = createFakeUpstream();
  // The fake clock starts at the real time, so records it stamps compare sensibly with file times.
  let now = Date.now();
  const clock = { now: () => now, advance: (ms: number) => (now += ms) };
  const warnings: string[] = [];
  const infos: string[] = [];
  const upstreams = createUpstreams({
    registries: opts.registries ?? [{ name: "up.test", scheme: "http" }],
    timeoutMs: opts.pullTimeoutMs ?? 5000,
    fetch: upstream.fetch,
    now: clock.now,
    // Never DNS in unit tests: each name is its own identity.
    lookup: async () => [],
  });
  const cache = createCache({
    store, upstreams, airGapped: opts.airGapped ?? false,
    revalidateAfterMs: opts.revalidateAfterMs ?? 60_000, pullTimeoutMs: opts.pullTimeoutMs ?? 5000,
    log: { ...quietLog, warn: (m: string) => void warnings.push(m), info: (m: string) => void infos.push(m) }, now: clock.now, tagPolicies: opts.tagPolicies,
    archives: opts.archives, bounds: opts.bounds, pinned: opts.pinned,
  });
  const handler = createRegistry({ cache, defaultNs: opts.defaultNs ?? "up.test", log: quietLog, allowUpstream: opts.allowUpstream });
  const request = (path: string, init?: RequestInit) => handler(new Request(`http://cache.test${path}`, init));
  return { root, store, upstream, cache, handler, request, clock, warnings, infos };
}
