// The registry cache as a library: createServer(config) builds the store, upstreams, cache,
// registry, metrics, health and admin API; start() listens (plus the metrics and health ports
// when configured) and starts the timers (flush, prune) and the preload; stop() is the graceful
// stop: readiness turns 503 at once, no new connections, downloads and responses get a while to
// finish, records are flushed. `ociregistry serve` only maps flags to the config and calls these.
import type { Server } from "bun";
import pkg from "../../package.json" with { type: "json" };
import { createArchiveSource } from "../archives/source.ts";
import { hostPlatform } from "../oci/platform.ts";
import { pullImages } from "../cache/pull-images.ts";
import type { Config } from "../config/schema.ts";
import { LogLines, type Logger } from "../log.ts";
import type { ImageReference } from "../oci/reference.ts";
import { createBasicAuth } from "../registry/auth.ts";
import { createUnexpected, RegistryError } from "../registry/errors.ts";
import { createRegistry } from "../registry/router.ts";
import { createAdmin } from "./admin.ts";
import { banner, clientHints } from "./banner.ts";
import { createHistory, SAMPLE_MS } from "./history.ts";
import { createMetrics } from "./metrics.ts";
import { imagePattern } from "../oci/pattern.ts";
import { statusPage } from "./page.ts";
import { createRuntime, listedUpstreams } from "./runtime.ts";
import { createStatus } from "./status.ts";

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
  /** Print how to point clients at the cache (a first run without a config file). */
  clientHints?: boolean;
}

/** The route label of a request path, for metrics. */
function routeOf(path: string): string {
  if (path === "/v2/" || path === "/v2") return "base";
  const m = path.match(/^\/v2\/.+\/(manifests|blobs|referrers)\/[^/]+$/) ?? path.match(/^\/v2\/.+\/(tags)\/list$/);
  return m ? m[1]! : "other";
}

export async function createServer(cfg: Config, log: Logger, opts: ServerOptions = {}) {
  const listed = listedUpstreams(cfg);
  const metrics = createMetrics(listed);
  // `metrics: false` turns the instrumentation off, not only the endpoint.
  const instrumented = cfg.metrics !== false;
  const hooks = instrumented ? { usage: metrics.usage, quota: metrics.quota, cache: metrics.cache, upstream: metrics.upstream } : {};
  const archives = cfg.archives ? createArchiveSource(cfg.archives.path, { log: log.withTag("archives") }) : null;
  // A missing archives directory stops the start; later scans that fail keep the last listing.
  if (archives) log.withTag("archives").info(`${(await archives.rescan()).files} .oci file(s) under ${archives.dir}`);
  // The preload list is the operator's own choice: its upstreams count as listed.
  const { store, cache, upstreams, tags } = await createRuntime(cfg, log, { ...hooks, archives: archives ?? undefined, listed: opts.preload?.map((r) => r.upstream) });
  // One login check for the registry and the status page, so both share its throttle.
  const login = cfg.users.length ? createBasicAuth(cfg.users) : null;
  const registry = createRegistry({
    cache, defaultNs: cfg.defaultNs, log: log.withTag("http"), logRequests: cfg.logLevel === "debug" || cfg.logLevel === "trace",
    auth: login,
    allowUpstream: cfg.upstreams === "listed" ? (u) => listed.has(u) : undefined,
  });
  const started = Date.now();
  const history = createHistory(metrics.counts);
  const status = createStatus({ cfg, version: pkg.version, started, metrics, upstreams, listed, quota: cache.quota, history: history.view });
  const admin = cfg.adminToken ? createAdmin({ token: cfg.adminToken, cache, store, tags, archives, pinned: cfg.pinned.map(imagePattern), status: () => status.full(), onPruned: (b) => metrics.pruned(b) }) : null;
  const unexpected = createUnexpected((m) => log.withTag("http").error(m));
  const grace = opts.graceMs ?? SHUTDOWN_GRACE_MS;
  const servers: Server<undefined>[] = [];
  const timers: Timer[] = [];
  let stopping: Promise<void> | null = null;
  let stopMaintaining: (() => Promise<void>) | null = null;
  let preloading: Promise<unknown> = Promise.resolve();
  let probed = { at: 0, problem: null as string | null };

  /** 200 when the store can be read and written and no stop has begun; the probe runs at most every 2 s. */
  async function readiness(): Promise<Response> {
    if (stopping) return new Response("shutting down\n", { status: 503 });
    if (Date.now() - probed.at > 2000) {
      const problem = await store.probe().then(() => null, (err) => `store ${cfg.imagePath} is not usable: ${(err as Error).message}`);
      probed = { at: Date.now(), problem };
    }
    return probed.problem ? new Response(`${probed.problem}\n`, { status: 503 }) : new Response("ready\n");
  }

  async function scrape(): Promise<Response> {
    await metrics.bounds(cache.quota);
    return new Response(await metrics.registry.metrics(), { headers: { "Content-Type": metrics.registry.contentType } });
  }

  /** Endpoints that need no credentials and never reach an upstream. */
  function operational(path: string): Promise<Response> | Response | null {
    if (path === "/healthz") return new Response("ok\n");
    if (path === "/readyz") return readiness();
    if (path === "/metrics" && cfg.metrics === true) return scrape();
    return null;
  }

  /** `/` and `/status.json`: public without the admin API only when clients need no login. */
  async function ui(req: Request, path: string, client: string | undefined): Promise<Response> {
    // With the admin token, /status.json shows everything /api/v1/status shows.
    if (admin && path === "/status.json" && /^Bearer\s/i.test(req.headers.get("authorization") ?? "")) {
      return admin.refusal(req, client) ?? Response.json(status.full(), { headers: { "Cache-Control": "no-store" } });
    }
    const refused = login ? await login.check(req.headers.get("authorization"), client).then(() => null, (e: unknown) => {
      if (e instanceof RegistryError) return e.toResponse(req.method);
      throw e;
    }) : null;
    if (refused) return refused;
    if (path === "/") return statusPage(!!admin);
    // Without the token: aggregates and the listed upstreams only (no image names, no client-named upstreams).
    return admin ? new Response("the admin API is on: use /api/v1/status or /status.json with the admin token\n", { status: 404 }) : Response.json(status.aggregate(), { headers: { "Cache-Control": "no-store" } });
  }

  /** Everything on the main port: operational endpoints, the admin API, the page, the registry. */
  async function handle(req: Request, server?: Server<undefined>): Promise<Response> {
    const t0 = performance.now();
    const url = new URL(req.url);
    const path = url.pathname;
    const op = operational(path);
    if (op) return op;
    // The peer's address, never X-Forwarded-For (any client can send that): login throttling keys
    // on it. Asked only when a login or the admin token can be throttled (it costs a native call).
    const client = login || admin ? server?.requestIP(req)?.address : undefined;
    let res: Response;
    let route: string;
    if (path.startsWith("/api/v1/") && admin) {
      route = "admin";
      res = await admin.handle(req, path.slice("/api/v1/".length), client);
    } else if ((path === "/" || path === "/status.json") && req.method === "GET") {
      route = "ui";
      res = await ui(req, path, client);
    } else {
      route = routeOf(path);
      res = await registry(req, url, client);
    }
    if (!instrumented) return res;
    const length = res.headers.get("content-length");
    metrics.request(route, req.method, res.status, (performance.now() - t0) / 1000, req.method === "GET" && length ? Number(length) : null);
    return res;
  }

  /** Bun.serve's answer to a throw no handler caught: the generic 500, never the runtime's error page. */
  function error(err: Error): Response {
    return unexpected(err, "request");
  }

  function listen(port: number, fetch: (req: Request) => Promise<Response> | Response): Server<undefined> {
    // development: false keeps Bun from answering a throw with its error page (stack, paths, source).
    const s = Bun.serve({ hostname: cfg.host, port, fetch, error, development: false });
    servers.push(s);
    return s;
  }

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
        if (!r.dryRun) metrics.pruned(r.bytes);
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
    const t0 = Date.now();
    preloading = pullImages(cache.pullImage, refs, {
      platforms: [hostPlatform()], concurrency: 4,
      onImage: (ref, r) => (r instanceof Error ? plog.error(`${ref}: ${r.message}`) : plog.info(`${ref} ${r.digest}`)),
    }).then(async (o) => {
      await cache.flush();
      plog.info(`loaded ${o.pulled.length} of ${refs.length} images, ${o.bytes} bytes downloaded in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      if (o.failed.length) plog.warn(`${o.failed.length} image(s) failed to preload: ${o.failed.map((f) => f.ref).join(", ")}`);
    }).catch((err) => plog.error((err as Error).message));
  }

  return {
    cache,
    store,
    metrics,
    /** The main port's request handler, for in-process tests. */
    handler: handle,
    /** What Bun.serve answers when a handler throws (for in-process tests). */
    onError: error,
    /** Listens, starts the timers and the preload; returns the ports (useful with port 0). */
    start(): { port: number; metricsPort?: number; healthPort?: number } {
      const t = cfg.serverTlsConfig;
      const main = Bun.serve({
        hostname: cfg.host,
        port: cfg.port,
        // Streaming a cold blob may wait on a slow upstream; Bun's limit is 255 s.
        idleTimeout: Math.min(255, Math.ceil(cfg.pullTimeoutMs / 1000) + 10),
        fetch: handle,
        error,
        development: false,
        tls: t ? { cert: t.cert, key: t.key, ca: t.ca, requestCert: t.clientAuth === "verify", rejectUnauthorized: t.clientAuth === "verify" } : undefined,
      });
      servers.push(main);
      const ports: { port: number; metricsPort?: number; healthPort?: number } = { port: main.port! };
      const mp = typeof cfg.metrics === "number" ? cfg.metrics : undefined;
      const sameAux = mp !== undefined && cfg.healthPort === mp;
      if (mp !== undefined) {
        ports.metricsPort = listen(mp, (req) => {
          const p = new URL(req.url).pathname;
          return p === "/metrics" ? scrape() : sameAux ? operational(p) ?? new Response("not found\n", { status: 404 }) : new Response("not found\n", { status: 404 });
        }).port!;
        if (sameAux) ports.healthPort = ports.metricsPort;
      }
      if (cfg.healthPort !== undefined && !sameAux) {
        ports.healthPort = listen(cfg.healthPort, (req) => operational(new URL(req.url).pathname) ?? new Response("not found\n", { status: 404 })).port!;
      }
      timers.push(setInterval(() => void cache.flush(), opts.flushIntervalMs ?? FLUSH_INTERVAL_MS));
      timers.push(setInterval(history.take, SAMPLE_MS));
      if (archives && cfg.archives) {
        timers.push(setInterval(() => void archives.rescan().catch((err) => log.withTag("archives").warn(`rescan failed, serving the last listing: ${(err as Error).message}`)), cfg.archives.rescanMs));
      }
      startPruner();
      if (opts.preload?.length) startPreload(opts.preload);
      stopMaintaining = cache.maintain();
      log.info(new LogLines(banner(cfg, ports.port, ports)));
      if (opts.clientHints) log.info(new LogLines(clientHints(cfg.host, ports.port, !!t).split("\n")));
      return ports;
    },
    /** Graceful stop: readiness 503 at once; no new connections; downloads and responses get `graceMs`, then are cut; records are flushed. */
    stop(): Promise<void> {
      stopping ??= (async () => {
        log.info("shutting down");
        for (const t of timers) clearInterval(t);
        const [main, ...aux] = servers;
        const inFlight = main ? main.stop(false) : Promise.resolve();
        await cache.drain(grace);
        await Promise.race([preloading, Bun.sleep(grace)]);
        await cache.flush();
        await stopMaintaining?.();
        await Promise.race([inFlight, Bun.sleep(grace)]);
        await main?.stop(true);
        for (const s of aux) await s.stop(true);
      })();
      return stopping;
    },
    /** Whether a stop has begun (readiness is 503 from then on). */
    get stopping() {
      return stopping !== null;
    },
  };
}

export type RegistryServer = Awaited<ReturnType<typeof createServer>>;
