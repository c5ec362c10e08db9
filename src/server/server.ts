// The registry cache as a library: createServer(config) builds the store, upstreams, cache,
// registry, metrics, health and admin API; start() listens (plus the metrics and health ports
// when configured) and starts the timers (flush, prune) and the preload; stop() is the graceful
// stop: readiness turns 503 at once while serving goes on for `shutdownDelay`, then no new
// connections, downloads and responses get `drainTimeout` to finish, records are flushed;
// reload() takes a config read again (reload.ts). `ociregistry serve` maps flags and signals to these.
import type { Server } from "bun";
import pkg from "../../package.json" with { type: "json" };
import { hostPlatform } from "../oci/platform.ts";
import { pullImages } from "../cache/pull-images.ts";
import type { Config } from "../config/schema.ts";
import { LogLines, type Logger } from "../log.ts";
import type { ImageReference } from "../oci/reference.ts";
import { createBasicAuth, type BasicAuth } from "../registry/auth.ts";
import { createLoginThrottle } from "../registry/throttle.ts";
import { createVerifyQueue } from "../registry/verify-queue.ts";
import { createUnexpected, RegistryError } from "../registry/errors.ts";
import { createRegistry, type Exchange } from "../registry/router.ts";
import { createAccessLog, requestId } from "./access.ts";
import { createAdmin } from "./admin.ts";
import { banner, clientHints } from "./banner.ts";
import { createHistory, SAMPLE_MS } from "./history.ts";
import { createIdleTrim, TRIM_CHECK_MS } from "./idle-trim.ts";
import { createMetrics } from "./metrics.ts";
import { imagePattern } from "../oci/pattern.ts";
import { statusPage } from "./page.ts";
import { createMainListener } from "./listener.ts";
import { createReloader, type ConfigChanges } from "./reload.ts";
import { checkBounds, createRuntime, guardListed, listedUpstreams, upstreamSettings } from "./runtime.ts";
import { createStatus } from "./status.ts";
import { INTERNAL_PREFIX, internalEndpoint, peerLink } from "./replica-link.ts";
import { ConfigError } from "../config/error.ts";
import { createQuietGate } from "../lib/quiet.ts";

/** How often batched last-pulled times are written. */
const FLUSH_INTERVAL_MS = 30_000;

export interface ServerOptions {
  /** Images to pull in the background once listening (`--preload-images`). */
  preload?: ImageReference[];
  /** Builds the config again from its file and flags (reload); without it, reloads are refused. */
  reread?: () => Config;
  /** Changes the level of every logger (reload). */
  setLogLevel?: (level: Config["logLevel"]) => void;
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
  const metrics = createMetrics(listed, { s3: !!cfg.s3 });
  // `metrics: false` turns the instrumentation off, not only the endpoint.
  const instrumented = cfg.metrics !== false;
  const hooks = instrumented ? { usage: metrics.usage, quota: metrics.quota, cache: metrics.cache, upstream: metrics.upstream, ...(metrics.s3 ? { s3: metrics.s3 } : {}) } : {};
  // Loaded only with archives configured: the archive reader is ~7 MiB of RSS a plain cache never uses.
  const archives = cfg.archives ? (await import("../archives/source.ts")).createArchiveSource(cfg.archives.path, { log: log.withTag("archives") }) : null;
  // A missing archives directory stops the start; later scans that fail keep the last listing.
  if (archives) log.withTag("archives").info(`${(await archives.rescan()).files} .oci file(s) under ${archives.dir}`);
  // Replicas on one S3 store: this one's internal address (known once listening unless advertised).
  const replicas = cfg.s3 ? cfg.replicas : undefined;
  let advertised = replicas?.advertise ?? "";
  if (replicas && !advertised && /^(0\.0\.0\.0|::|\[::\])$/.test(cfg.host)) {
    throw new ConfigError("replicas.advertise", `is needed when host is ${cfg.host}: the URL the other replicas reach this one at, e.g. http://10.0.0.5:${cfg.port}`);
  }
  const peers = replicas ? peerLink(replicas.secret, () => advertised, cfg.pullTimeoutMs + 5000) : undefined;
  // S3 uploads of blobs already served wait for the clients to be quiet (watching the listener below).
  const quiet = createQuietGate();
  // The preload list is the operator's own choice: its upstreams count as listed.
  const { store, cache, upstreams, tags } = await createRuntime(cfg, log, { ...hooks, archives: archives ?? undefined, listed: opts.preload?.map((r) => r.upstream), peers, serving: true, quiet });
  const internal = replicas ? internalEndpoint(replicas.secret, cache) : null;
  // One login check for the registry and the status page, so both share its throttle; a reload
  // replaces the users and keeps the throttle (failed attempts still count).
  const loginLimits = { throttle: createLoginThrottle(), queue: createVerifyQueue() };
  const loginFor = (c: Config) => (c.users.length ? createBasicAuth(c.users, undefined, undefined, loginLimits) : null);
  let login = loginFor(cfg);
  const registryAuth: BasicAuth = { check: (header, client) => (login ? login.check(header, client) : Promise.resolve()) };
  const registry = createRegistry({
    cache, defaultNs: cfg.defaultNs, log: log.withTag("http"),
    auth: registryAuth,
    allowUpstream: cfg.upstreams === "listed" ? (u) => listed.has(u) : undefined,
  });
  const started = Date.now();
  const history = createHistory(metrics.counts);
  const status = createStatus({ cfg, version: pkg.version, started, metrics, upstreams, listed, quota: cache.quota, history: history.view });
  const pinnedPatterns = cfg.pinned.map(imagePattern);
  const admin = cfg.adminToken ? createAdmin({
    token: cfg.adminToken, cache, store, tags, archives, pinned: pinnedPatterns, status: () => status.full(), onPruned: (b) => metrics.pruned(b), log,
    reload: () => reloader.reload("admin API"),
  }) : null;
  const unexpected = createUnexpected((m) => log.withTag("http").error(m));
  // `accessLog: false` costs nothing per request: no entry, no client address, no line.
  const access = cfg.accessLog ? createAccessLog(log) : null;
  let running = cfg;
  let main: ReturnType<typeof createMainListener> | null = null;
  /** Metrics and health ports. */
  const servers: Server<undefined>[] = [];
  const timers: Timer[] = [];
  let pruner: Timer | null = null;
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

  /** Everything on the main port, each answer with its request id, and its access line when on. */
  async function handle(req: Request, server?: Server<undefined>): Promise<Response> {
    const t0 = performance.now();
    const id = requestId(req.headers.get("x-request-id"));
    const url = new URL(req.url);
    // The peer's address, never X-Forwarded-For (any client can send that): login throttling keys
    // on it. Asked only when a login or the admin token can be throttled, or for the access log (it costs a native call).
    const client = access || login || admin ? server?.requestIP(req)?.address : undefined;
    const exchange: Exchange | undefined = access ? {} : undefined;
    const res = await answer(req, url, t0, client, exchange);
    res.headers.set("X-Request-Id", id);
    if (access) {
      const length = req.method === "HEAD" ? "0" : res.headers.get("content-length");
      access({ id, client, method: req.method, path: url.pathname + url.search, status: res.status, bytes: length === null ? null : Number(length), durationMs: performance.now() - t0, exchange });
    }
    return res;
  }

  /** Operational endpoints, the admin API, the page, the registry. */
  async function answer(req: Request, url: URL, t0: number, client: string | undefined, exchange: Exchange | undefined): Promise<Response> {
    const path = url.pathname;
    const op = operational(path);
    if (op) return op;
    let res: Response;
    let route: string;
    if (internal && path.startsWith(INTERNAL_PREFIX)) {
      route = "internal";
      res = await internal(req, path);
    } else if (path.startsWith("/api/v1/") && admin) {
      route = "admin";
      res = await admin.handle(req, path.slice("/api/v1/".length), client);
    } else if ((path === "/" || path === "/status.json") && req.method === "GET") {
      route = "ui";
      res = await ui(req, path, client);
    } else {
      route = routeOf(path);
      res = await registry(req, url, client, exchange);
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
    if (pruner) clearInterval(pruner);
    pruner = null;
    const pc = running.pruneConfig;
    if (!pc?.enabled) return;
    const plog = log.withTag("prune");
    pruner = setInterval(async () => {
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
    }, pc.frequencyMs);
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

  /** Makes the running server take what a reload changed: what can fail (the certificate, the bounds) first. */
  function apply(next: Config, changes: ConfigChanges) {
    const has = (k: ConfigChanges["applied"][number]) => changes.applied.includes(k);
    if (has("maxSize") || has("minFreeSpace")) checkBounds(next);
    if (has("serverTlsConfig")) main?.setTls(next.serverTlsConfig!);
    if (has("logLevel")) opts.setLogLevel?.(next.logLevel);
    if (has("registries") || has("dockerConfig")) {
      upstreams.reconfigure(upstreamSettings(next, log), guardListed(next, opts.preload?.map((r) => r.upstream)));
      listed.clear();
      for (const u of listedUpstreams(next)) listed.add(u);
    }
    if (has("users")) login = loginFor(next);
    if (has("maxSize") || has("minFreeSpace") || has("pinned")) {
      pinnedPatterns.splice(0, Infinity, ...next.pinned.map(imagePattern));
      cache.rebound({ maxSize: next.maxSize, minFreeSpace: next.minFreeSpace }, pinnedPatterns);
    }
    // Keys that need a restart keep their running values, so the next reload names them again.
    running = { ...running, ...Object.fromEntries(changes.applied.map((k) => [k, next[k]])) };
    if (has("pruneConfig") && main && !stopping) startPruner();
  }
  const reloader = createReloader({
    running: () => running, apply, log: log.withTag("config"),
    reread: () => {
      if (!opts.reread) throw new Error("this server was built without a way to read its config again");
      return opts.reread();
    },
  });

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
      main = createMainListener({
        hostname: cfg.host, port: cfg.port, fetch: handle, error,
        // Streaming a cold blob may wait on a slow upstream; Bun's limit is 255 s.
        idleTimeout: Math.min(255, Math.ceil(cfg.pullTimeoutMs / 1000) + 10),
      }, t);
      const listener = main;
      quiet.watch(() => listener.pendingRequests > 0);
      const ports: { port: number; metricsPort?: number; healthPort?: number } = { port: main.server.port! };
      if (replicas && !advertised) advertised = `${t ? "https" : "http"}://${cfg.host.includes(":") && !cfg.host.startsWith("[") ? `[${cfg.host}]` : cfg.host}:${ports.port}`;
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
      // Records a flush wrote count as requests for the idle trim: writing 90,000 pull times after
      // a burst grows the heap as much as the burst did, and no request follows to trim it.
      let flushed = 0;
      timers.push(setInterval(() => void cache.flush().then((n) => (flushed += n), () => {}), opts.flushIntervalMs ?? FLUSH_INTERVAL_MS));
      timers.push(setInterval(history.take, SAMPLE_MS));
      const activity = { get requests() { return metrics.counts.requests + flushed; }, get downloadsInFlight() { return metrics.counts.downloadsInFlight; } };
      timers.push(setInterval(createIdleTrim(activity).check, TRIM_CHECK_MS).unref());
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
    /**
     * Graceful stop: readiness 503 at once while everything is served for `delayMs` (default
     * `shutdownDelay`: load balancers take the instance out meanwhile); then no new connections,
     * downloads and responses get `drainTimeout`, then are cut; records and the size snapshot are saved.
     */
    stop(delayMs = running.shutdownDelayMs): Promise<void> {
      stopping ??= (async () => {
        const drain = running.drainTimeoutMs;
        log.info(`shutting down: /readyz answers 503${delayMs ? `, serving ${delayMs / 1000} s more` : ""}, then requests in flight get up to ${drain / 1000} s`);
        if (delayMs > 0) await Bun.sleep(delayMs);
        // Uploads waiting for quiet go now: the drain waits for them.
        quiet.open();
        for (const t of timers) clearInterval(t);
        if (pruner) clearInterval(pruner);
        const deadline = Date.now() + drain;
        const inFlight = main?.close() ?? Promise.resolve();
        await cache.drain(drain);
        await within(preloading, deadline);
        await within(inFlight, deadline);
        await cache.flush();
        await stopMaintaining?.();
        await main?.kill();
        for (const s of servers) await s.stop(true);
        log.info("stopped");
      })();
      return stopping;
    },
    /** Reads the config again and applies what can change without a restart (SIGHUP, the admin API). */
    reload: (source: string) => reloader.reload(source),
    /** Whether a stop has begun (readiness is 503 from then on). */
    get stopping() {
      return stopping !== null;
    },
  };
}

/** Waits for `p` until `deadline` (epoch ms), whichever comes first. */
async function within(p: Promise<unknown>, deadline: number): Promise<void> {
  let timer: Timer | undefined;
  await Promise.race([p, new Promise((r) => (timer = setTimeout(r, Math.max(0, deadline - Date.now()))))]);
  clearTimeout(timer);
}

export type RegistryServer = Awaited<ReturnType<typeof createServer>>;
