// `ociregistry serve`: wires config, store, upstreams, cache and registry into Bun.serve.
import { defineCommand } from "citty";
import { loadConfig } from "../../config/load.ts";
import type { Config } from "../../config/schema.ts";
import { createLogger, type Logger } from "../../log.ts";
import { createRegistry } from "../../registry/router.ts";
import { readFileSync } from "node:fs";
import { hostPlatform } from "../../cache/index.ts";
import { parseImageList } from "../../config/image-list.ts";
import { createRuntime, listedUpstreams } from "../runtime.ts";
import { globalArgs, globalFlags, upstreamArgs } from "../globals.ts";
import { exitWithError } from "../fail.ts";

/** How often batched last-pulled times are written. */
const FLUSH_INTERVAL_MS = 30_000;
/** How long shutdown waits for downloads and responses before cutting them. */
const SHUTDOWN_GRACE_MS = 10_000;

export async function startServer(cfg: Config, log: Logger) {
  const { cache } = await createRuntime(cfg, log);
  const listed = listedUpstreams(cfg);
  const handler = createRegistry({
    cache, defaultNs: cfg.defaultNs, log: log.withTag("http"), logRequests: cfg.logLevel === "debug" || cfg.logLevel === "trace",
    users: cfg.users,
    allowUpstream: cfg.upstreams === "listed" ? (u) => listed.has(u) : undefined,
  });
  const t = cfg.serverTlsConfig;
  const server = Bun.serve({
    hostname: cfg.host,
    port: cfg.port,
    // Streaming a cold blob may wait on a slow upstream; Bun's limit is 255 s.
    idleTimeout: Math.min(255, Math.ceil(cfg.pullTimeoutMs / 1000) + 10),
    fetch: handler,
    tls: t
      ? { cert: t.cert, key: t.key, ca: t.ca, requestCert: t.clientAuth === "verify", rejectUnauthorized: t.clientAuth === "verify" }
      : undefined,
  });
  const flusher = setInterval(() => void cache.flush(), FLUSH_INTERVAL_MS);
  const pc = cfg.pruneConfig;
  const pruner = pc?.enabled
    ? setInterval(async () => {
        const r = await cache.prune({
          olderThanMs: pc.olderThanMs, by: pc.type === "created" ? "created" : "lastPulled", dryRun: pc.dryRun,
          limit: pc.count === -1 ? undefined : pc.count,
        }).catch((err) => void log.withTag("prune").error((err as Error).message));
        for (const s of r ? r.skipped : []) log.withTag("prune").warn(`skipped ${s}`);
        if (r && (r.images.length || r.unreferenced)) {
          log.withTag("prune").info(`${r.dryRun ? "would remove" : "removed"} ${r.images.length} image(s), ${r.blobs} blob(s), ${r.bytes} bytes: ${r.images.join(", ")}`);
        }
      }, pc.frequencyMs)
    : null;
  const notes = [`default namespace ${cfg.defaultNs}`];
  if (cfg.airGapped) notes.push("air-gapped");
  if (t) notes.push(t.clientAuth === "verify" ? "TLS, client certificates required" : "TLS");
  if (cfg.users.length) notes.push(`basic auth for ${cfg.users.length} user(s)`);
  log.info(`serving ${cfg.imagePath} on port ${server.port} (${notes.join(", ")})`);

  let stopping = false;
  async function stop() {
    if (stopping) return;
    stopping = true;
    log.info("shutting down");
    clearInterval(flusher);
    if (pruner) clearInterval(pruner);
    // Stop accepting; in-flight responses go on. Downloads get up to 10 s, then are aborted.
    const inFlight = server.stop(false);
    await cache.drain(SHUTDOWN_GRACE_MS);
    await cache.flush();
    await Promise.race([inFlight, Bun.sleep(SHUTDOWN_GRACE_MS)]);
    await server.stop(true);
  }
  return { server, cache, stop };
}

export default defineCommand({
  meta: { name: "serve", description: "Run the pull-through registry cache" },
  args: {
    ...globalArgs,
    ...upstreamArgs,
    host: { type: "string", description: "Address to listen on (default: 0.0.0.0)", valueHint: "ADDR" },
    port: { type: "string", description: "Port to listen on (default: 8080)", valueHint: "PORT" },
    "default-ns": { type: "string", description: "Upstream for requests that name none (default: docker.io)", valueHint: "HOST" },
    "revalidate-after": { type: "string", description: "Check cached tags upstream after this long (default: 5m)", valueHint: "DURATION" },
    "air-gapped": { type: "boolean", description: "Never contact an upstream; serve only the store (default: false)" },
    "preload-images": { type: "string", description: "Image list to pull into the store in the background at start", valueHint: "FILE" },
  },
  async run({ args }) {
    let cfg: Config;
    try {
      cfg = loadConfig({
        ...globalFlags(args),
        host: args.host, port: args.port, defaultNs: args["default-ns"], pullTimeout: args["pull-timeout"],
        revalidateAfter: args["revalidate-after"], airGapped: args["air-gapped"],
        dockerConfig: args["docker-config"],
      });
    } catch (err) {
      return exitWithError(err);
    }
    const log = createLogger(cfg.logLevel, cfg.logFormat);
    const preload = args["preload-images"];
    try {
      // A bad image list stops the start, before anything listens or downloads.
      if (preload) parseImageList(readFileSync(preload, "utf8"), `image list ${preload}`);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      return exitWithError(e.code ? new Error(`--preload-images: cannot read ${preload}: ${e.code}`) : err);
    }
    let running;
    try {
      running = await startServer(cfg, log);
    } catch (err) {
      return exitWithError(err);
    }
    if (preload) {
      const { loadImageFile } = await import("./load.ts");
      loadImageFile(cfg, log.withTag("preload"), preload, [hostPlatform()], 4, running.cache)
        .then((o) => o.failed.length && log.withTag("preload").warn(`${o.failed.length} image(s) failed to preload: ${o.failed.map((f) => f.ref).join(", ")}`))
        .catch((err) => log.withTag("preload").error((err as Error).message));
    }
    for (const sig of ["SIGTERM", "SIGINT"] as const) {
      process.on(sig, () => void running.stop().then(() => process.exit(0)));
    }
  },
});
