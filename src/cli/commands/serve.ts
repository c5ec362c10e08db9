// `ociregistry serve`: wires config, store, upstreams, cache and registry into Bun.serve.
import { defineCommand } from "citty";
import { createCache } from "../../cache/index.ts";
import { loadConfig } from "../../config/load.ts";
import type { Config } from "../../config/schema.ts";
import { createLogger, type Logger } from "../../log.ts";
import { canonicalUpstream } from "../../oci/names.ts";
import { createRegistry } from "../../registry/router.ts";
import { createFsStore } from "../../store/fs.ts";
import { createUpstreams } from "../../upstream/client.ts";
import { globalArgs, globalFlags } from "../globals.ts";
import { exitWithError } from "../fail.ts";

/** How often batched last-pulled times are written. */
const FLUSH_INTERVAL_MS = 30_000;
/** How long shutdown waits for downloads and responses before cutting them. */
const SHUTDOWN_GRACE_MS = 10_000;

export async function startServer(cfg: Config, log: Logger) {
  const store = createFsStore(cfg.imagePath);
  const removed = await store.init();
  if (removed) log.withTag("store").info(`removed ${removed} leftover temp file(s) from an interrupted run`);
  const upstreams = createUpstreams({
    timeoutMs: cfg.pullTimeoutMs,
    registries: cfg.registries.map((r) => ({ name: r.name, scheme: r.scheme, credentials: r.auth, tls: r.tls })),
    onRefused: (upstream, reason) => log.withTag("upstream").warn(`upstream ${upstream} refused us: ${reason}`),
  });
  const cache = createCache({
    store, upstreams, airGapped: cfg.airGapped, revalidateAfterMs: cfg.revalidateAfterMs,
    pullTimeoutMs: cfg.pullTimeoutMs, log: log.withTag("cache"),
    tagPolicies: cfg.tagPolicies.map((p) => ({ match: new RegExp(p.match), revalidateAfterMs: p.revalidateAfterMs })),
  });
  const listed = new Set([canonicalUpstream(cfg.defaultNs), ...cfg.registries.map((r) => r.name)]);
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
    host: { type: "string", description: "Address to listen on (default: 0.0.0.0)", valueHint: "ADDR" },
    port: { type: "string", description: "Port to listen on (default: 8080)", valueHint: "PORT" },
    "default-ns": { type: "string", description: "Upstream for requests that name none (default: docker.io)", valueHint: "HOST" },
    "pull-timeout": { type: "string", description: "Milliseconds to wait for upstream data (default: 60000)", valueHint: "MS" },
    "revalidate-after": { type: "string", description: "Check cached tags upstream after this long (default: 5m)", valueHint: "DURATION" },
    "air-gapped": { type: "boolean", description: "Never contact an upstream; serve only the store (default: false)" },
    "docker-config": { type: "string", description: "Docker config.json whose auths give upstream credentials", valueHint: "FILE" },
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
    let running;
    try {
      running = await startServer(cfg, log);
    } catch (err) {
      return exitWithError(err);
    }
    for (const sig of ["SIGTERM", "SIGINT"] as const) {
      process.on(sig, () => void running.stop().then(() => process.exit(0)));
    }
  },
});
