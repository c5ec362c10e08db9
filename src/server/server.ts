// The registry cache as a library: createServer(config) builds the store, upstreams, cache and
// registry; start() listens and starts the timers (flush, prune) and the preload; stop() is the
// graceful stop (stop accepting, let downloads and responses finish for a while, flush).
// `ociregistry serve` only maps flags to the config and calls these.
import type { Server } from "bun";
import { hostPlatform } from "../cache/index.ts";
import { pullImages } from "../cache/pull-images.ts";
import type { Config } from "../config/schema.ts";
import type { Logger } from "../log.ts";
import type { ImageReference } from "../oci/reference.ts";
import { createRegistry } from "../registry/router.ts";
import { createRuntime, listedUpstreams } from "./runtime.ts";

/** How often batched last-pulled times are written. */
const FLUSH_INTERVAL_MS = 30_000;
/** How long shutdown waits for downloads and responses before cutting them. */
const SHUTDOWN_GRACE_MS = 10_000;

export interface ServerOptions {
  /** Images to pull in the background once listening (`--preload-images`). */
  preload?: ImageReference[];
  /** Shutdown grace for downloads and responses (default 10 s). */
  graceMs?: number;
  /** Flush interval for last-pulled times (default 30 s). */
  flushIntervalMs?: number;
}

export async function createServer(cfg: Config, log: Logger, opts: ServerOptions = {}) {
  const { store, cache } = await createRuntime(cfg, log);
  const listed = listedUpstreams(cfg);
  const handler = createRegistry({
    cache, defaultNs: cfg.defaultNs, log: log.withTag("http"), logRequests: cfg.logLevel === "debug" || cfg.logLevel === "trace",
    users: cfg.users,
    allowUpstream: cfg.upstreams === "listed" ? (u) => listed.has(u) : undefined,
  });
  const grace = opts.graceMs ?? SHUTDOWN_GRACE_MS;
  let server: Server<undefined> | null = null;
  const timers: Timer[] = [];
  let stopping: Promise<void> | null = null;
  let preloading: Promise<unknown> = Promise.resolve();

  function startPruner() {
    const pc = cfg.pruneConfig;
    if (!pc?.enabled) return;
    const plog = log.withTag("prune");
    timers.push(setInterval(async () => {
      try {
        const r = await cache.prune({
          olderThanMs: pc.olderThanMs, by: pc.type === "created" ? "created" : "lastPulled", dryRun: pc.dryRun,
          limit: pc.count === -1 ? undefined : pc.count,
        });
        for (const s of r.skipped) plog.warn(`skipped ${s}`);
        if (r.images.length || r.unreferenced) {
          plog.info(`${r.dryRun ? "would remove" : "removed"} ${r.images.length} image(s), ${r.blobs} blob(s), ${r.bytes} bytes: ${r.images.join(", ")}`);
        }
      } catch (err) {
        plog.error((err as Error).message);
      }
    }, pc.frequencyMs));
  }

  function startPreload(refs: ImageReference[]) {
    const plog = log.withTag("preload");
    const started = Date.now();
    preloading = pullImages(cache.pullImage, refs, {
      platforms: [hostPlatform()], concurrency: 4,
      onImage: (ref, r) => (r instanceof Error ? plog.error(`${ref}: ${r.message}`) : plog.info(`${ref} ${r.digest}`)),
    }).then(async (o) => {
      await cache.flush();
      plog.info(`loaded ${o.pulled.length} of ${refs.length} images, ${o.bytes} bytes downloaded in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      if (o.failed.length) plog.warn(`${o.failed.length} image(s) failed to preload: ${o.failed.map((f) => f.ref).join(", ")}`);
    }).catch((err) => plog.error((err as Error).message));
  }

  return {
    cache,
    store,
    /** The request handler, for in-process tests. */
    handler,
    /** Listens, starts the timers and the preload; resolves with the port (useful with port 0). */
    start(): { port: number } {
      const t = cfg.serverTlsConfig;
      server = Bun.serve({
        hostname: cfg.host,
        port: cfg.port,
        // Streaming a cold blob may wait on a slow upstream; Bun's limit is 255 s.
        idleTimeout: Math.min(255, Math.ceil(cfg.pullTimeoutMs / 1000) + 10),
        fetch: handler,
        tls: t ? { cert: t.cert, key: t.key, ca: t.ca, requestCert: t.clientAuth === "verify", rejectUnauthorized: t.clientAuth === "verify" } : undefined,
      });
      timers.push(setInterval(() => void cache.flush(), opts.flushIntervalMs ?? FLUSH_INTERVAL_MS));
      startPruner();
      if (opts.preload?.length) startPreload(opts.preload);
      const notes = [`default namespace ${cfg.defaultNs}`];
      if (cfg.airGapped) notes.push("air-gapped");
      if (t) notes.push(t.clientAuth === "verify" ? "TLS, client certificates required" : "TLS");
      if (cfg.users.length) notes.push(`basic auth for ${cfg.users.length} user(s)`);
      log.info(`serving ${cfg.imagePath} on port ${server.port} (${notes.join(", ")})`);
      return { port: server.port! };
    },
    /** Graceful stop: no new connections; downloads and responses get `graceMs`, then are cut; records are flushed. */
    stop(): Promise<void> {
      stopping ??= (async () => {
        log.info("shutting down");
        for (const t of timers) clearInterval(t);
        const s = server;
        const inFlight = s ? s.stop(false) : Promise.resolve();
        await cache.drain(grace);
        await Promise.race([preloading, Bun.sleep(grace)]);
        await cache.flush();
        await Promise.race([inFlight, Bun.sleep(grace)]);
        await s?.stop(true);
      })();
      return stopping;
    },
  };
}

export type RegistryServer = Awaited<ReturnType<typeof createServer>>;
