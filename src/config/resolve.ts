// Builds the effective Config: defaults, then the YAML file, then command-line flags. Every
// problem is reported with the key it concerns, e.g. `registries[0].scheme: must be http or https`.
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { canonicalUpstream, isHost } from "../oci/names.ts";
import { readDockerConfig } from "./docker-config.ts";
import { ConfigError } from "./error.ts";
import { ARCHIVES_RESCAN_MS, DEFAULTS, UPSTREAM_POLICIES, type Config, type RegistryEntry, type UpstreamPolicy } from "./schema.ts";
import { registry } from "./registries.ts";
import { s3Store } from "./s3.ts";
import { adminToken, archives, htpasswd, pruneConfig, serverTls, tagPolicies, users } from "./sections.ts";
import { bool, duration, isObject, logLevel, millis, port, str, transferRate, type Raw } from "./values.ts";

export { ConfigError };

/** Flag values as the CLI parsed them; undefined means "not given". */
export interface ConfigFlags {
  configFile?: string;
  imagePath?: string;
  logLevel?: string;
  logFormat?: string;
  host?: string;
  port?: string;
  defaultNs?: string;
  pullTimeout?: string;
  airGapped?: boolean;
  revalidateAfter?: string;
  dockerConfig?: string;
  logFile?: string;
  store?: string;
  /** `public`, `listed` or `any` (config `upstreams`). */
  upstreams?: string;
  /** `--archives DIR`: sets archives.path, keeping the file's archives.rescan. */
  archives?: string;
}

type Env = Record<string, string | undefined>;

const TOP_KEYS = new Set(["imagePath", "host", "port", "logLevel", "logFormat", "defaultNs", "pullTimeout", "airGapped", "revalidateAfter", "registries",
  "dockerConfig", "users", "htpasswd", "serverTlsConfig", "tagPolicies", "alwaysPullLatest", "upstreams", "pruneConfig", "maxUpstreamConnections", "maxUpstreamConnectionsTotal", "minTransferRate", "transferRateWindow",
  "metrics", "health", "admin", "logFile", "store", "s3", "archives"]);

/** Applies one layer of settings (file or flags) onto a config. */
function apply(cfg: Config, raw: Raw, where: (k: string) => string, env: Env) {
  if (raw.imagePath !== undefined) cfg.imagePath = str(raw.imagePath, where("imagePath"));
  if (raw.host !== undefined) {
    const h = str(raw.host, where("host"));
    if (!isHost(h) || h.includes(":") && !h.startsWith("[")) throw new ConfigError(where("host"), `must be an IP address or host name, got ${JSON.stringify(h)}`);
    cfg.host = h;
  }
  if (raw.port !== undefined) cfg.port = port(raw.port, where("port"));
  if (raw.logLevel !== undefined) cfg.logLevel = logLevel(raw.logLevel, where("logLevel"));
  if (raw.logFormat !== undefined) {
    if (raw.logFormat !== "text" && raw.logFormat !== "json") throw new ConfigError(where("logFormat"), "must be text or json");
    cfg.logFormat = raw.logFormat;
  }
  if (raw.defaultNs !== undefined) {
    const ns = str(raw.defaultNs, where("defaultNs"));
    if (!isHost(ns)) throw new ConfigError(where("defaultNs"), `must be a registry host, got ${JSON.stringify(ns)}`);
    cfg.defaultNs = ns.toLowerCase();
  }
  if (raw.pullTimeout !== undefined) cfg.pullTimeoutMs = millis(raw.pullTimeout, where("pullTimeout"));
  if (raw.airGapped !== undefined) cfg.airGapped = bool(raw.airGapped, where("airGapped"));
  if (raw.revalidateAfter !== undefined) cfg.revalidateAfterMs = duration(raw.revalidateAfter, where("revalidateAfter"));
  if (raw.tagPolicies !== undefined) cfg.tagPolicies = tagPolicies(raw.tagPolicies, where("tagPolicies"));
  if (raw.alwaysPullLatest !== undefined && bool(raw.alwaysPullLatest, where("alwaysPullLatest"))) {
    // The seed's switch, expressed as a freshness rule: `latest` is checked upstream on every pull.
    cfg.tagPolicies = [{ match: ":latest$", revalidateAfterMs: 0 }, ...cfg.tagPolicies];
  }
  if (raw.pruneConfig !== undefined) cfg.pruneConfig = pruneConfig(raw.pruneConfig, where("pruneConfig"));
  if (raw.upstreams !== undefined) {
    if (!UPSTREAM_POLICIES.includes(raw.upstreams as UpstreamPolicy)) {
      throw new ConfigError(where("upstreams"), `must be public, listed or any, got ${JSON.stringify(raw.upstreams)}`);
    }
    cfg.upstreams = raw.upstreams as UpstreamPolicy;
  }
  if (raw.maxUpstreamConnections !== undefined) {
    const n = raw.maxUpstreamConnections;
    if (typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > 1024) throw new ConfigError(where("maxUpstreamConnections"), "must be a whole number from 1 to 1024");
    cfg.maxUpstreamConnections = n;
  }
  if (raw.maxUpstreamConnectionsTotal !== undefined) {
    const n = raw.maxUpstreamConnectionsTotal;
    // Bun keeps at most 256 fetches in flight and queues the rest where no timeout sees them; the
    // store (S3) and the token fetches need some of those too.
    if (typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > 224) throw new ConfigError(where("maxUpstreamConnectionsTotal"), "must be a whole number from 1 to 224 (the runtime allows 256 fetches in flight)");
    cfg.maxUpstreamConnectionsTotal = n;
  }
  if (raw.minTransferRate !== undefined) cfg.minTransferRate = transferRate(raw.minTransferRate, where("minTransferRate"));
  if (raw.transferRateWindow !== undefined) {
    const ms = duration(raw.transferRateWindow, where("transferRateWindow"));
    if (ms < 1000) throw new ConfigError(where("transferRateWindow"), "must be at least 1s");
    cfg.transferRateWindowMs = ms;
  }
  if (raw.store !== undefined || raw.s3 !== undefined) cfg.s3 = s3Store(raw.store, raw.s3, where, env, cfg.s3);
  if (raw.metrics !== undefined) cfg.metrics = typeof raw.metrics === "boolean" || raw.metrics === "true" || raw.metrics === "false" ? bool(raw.metrics, where("metrics")) : port(raw.metrics, where("metrics"));
  if (raw.health !== undefined) cfg.healthPort = port(raw.health, where("health"));
  if (raw.admin !== undefined) cfg.adminToken = adminToken(raw.admin, where("admin"), env);
  if (raw.logFile !== undefined) cfg.logFile = str(raw.logFile, where("logFile"));
  if (raw.archives !== undefined) cfg.archives = archives(raw.archives, where("archives"));
  if (raw.dockerConfig !== undefined) cfg.dockerConfig = str(raw.dockerConfig, where("dockerConfig"));
  if (raw.users !== undefined) cfg.users = [...cfg.users, ...users(raw.users, where("users"))];
  if (raw.htpasswd !== undefined) cfg.users = [...cfg.users, ...htpasswd(raw.htpasswd, where("htpasswd"))];
  if (raw.serverTlsConfig !== undefined) cfg.serverTlsConfig = serverTls(raw.serverTlsConfig, where("serverTlsConfig"));
  if (raw.registries !== undefined) {
    if (!Array.isArray(raw.registries)) throw new ConfigError(where("registries"), "must be a list");
    cfg.registries = raw.registries.map((r, i) => registry(r, `${where("registries")}[${i}]`, env));
    const seen = new Set<string>();
    cfg.registries.forEach((r, i) => {
      if (seen.has(r.name)) throw new ConfigError(`registries[${i}].name`, `${r.name} is listed twice`);
      seen.add(r.name);
    });
  }
}

/** Credentials from a Docker config.json fill registries that have none of their own. */
/** The registries entry of an upstream, made (anonymous HTTPS) when there is none. */
function entryOf(cfg: Config, name: string): RegistryEntry {
  let entry = cfg.registries.find((r) => r.name === name);
  if (!entry) cfg.registries.push((entry = { name, scheme: "https", originFallback: true }));
  return entry;
}

/**
 * Credentials from outside the config file fill registries that have none of their own: a Docker
 * config.json's `auths` and credential helpers (`credHelpers` for their registries; `credsStore`
 * for the configured registries and the default namespace, never for hosts clients name), then
 * `UPSTREAM_CREDENTIALS` (a JSON map of upstream to {username, password}).
 */
function mergeOutsideCredentials(cfg: Config, dockerKey: string, env: Env) {
  if (cfg.dockerConfig) {
    const dc = readDockerConfig(cfg.dockerConfig, dockerKey);
    for (const [name, auth] of dc.auths) {
      const e = entryOf(cfg, name);
      if (!e.auth) e.auth = auth;
    }
    for (const [name, helper] of dc.helpers) {
      const e = entryOf(cfg, name);
      if (!e.auth) e.credentialHelper = helper;
    }
    if (dc.store) {
      entryOf(cfg, canonicalUpstream(cfg.defaultNs));
      for (const e of cfg.registries) if (!e.auth && !e.credentialHelper) e.credentialHelper = dc.store;
    }
  }
  const raw = env.UPSTREAM_CREDENTIALS;
  if (raw) {
    let map: unknown;
    try {
      map = JSON.parse(raw);
    } catch {
      throw new ConfigError("UPSTREAM_CREDENTIALS", "must be a JSON object of upstream to {username, password}");
    }
    if (!isObject(map)) throw new ConfigError("UPSTREAM_CREDENTIALS", "must be a JSON object of upstream to {username, password}");
    for (const [host, c] of Object.entries(map)) {
      const cred = c as { username?: unknown; password?: unknown };
      if (!isHost(host) || typeof cred?.username !== "string" || typeof cred?.password !== "string") {
        throw new ConfigError("UPSTREAM_CREDENTIALS", `${JSON.stringify(host)}: must be a host with {username, password} strings`);
      }
      const e = entryOf(cfg, canonicalUpstream(host));
      if (!e.auth && !e.credentialHelper) e.auth = { user: cred.username, password: cred.password };
    }
  }
}

/** Parses YAML config text; `source` names the file in errors. */
export function parseConfigText(text: string, source: string): Raw {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new ConfigError(source, `not valid YAML: ${(err as Error).message.split("\n")[0]}`);
  }
  if (raw === null || raw === undefined) return {};
  if (!isObject(raw)) throw new ConfigError(source, "must be a YAML mapping of keys");
  for (const k of Object.keys(raw)) {
    if (!TOP_KEYS.has(k)) throw new ConfigError(k, "unknown key");
  }
  return raw;
}

const FLAG_KEYS = [
  "imagePath", "logLevel", "logFormat", "host", "port", "defaultNs", "pullTimeout", "airGapped",
  "revalidateAfter", "dockerConfig", "logFile", "store", "upstreams",
] as const satisfies readonly (keyof ConfigFlags)[];

export function resolveConfig(flags: ConfigFlags, env: Env = process.env): Config {
  const cfg: Config = { ...DEFAULTS, registries: [], users: [] };
  if (flags.configFile) {
    let text: string;
    try {
      text = readFileSync(flags.configFile, "utf8");
    } catch (err) {
      throw new ConfigError("--config-file", `cannot read ${flags.configFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    apply(cfg, parseConfigText(text, flags.configFile), (k) => k, env);
  }
  const flagRaw: Raw = {};
  const flagName: Record<string, string> = {};
  // A flag overrides the config key of its name; errors name it as typed (imagePath: --image-path).
  for (const key of FLAG_KEYS) {
    if (flags[key] === undefined) continue;
    flagRaw[key] = flags[key];
    flagName[key] = `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
  }
  apply(cfg, flagRaw, (k) => flagName[k] ?? k, env);
  if (flags.archives !== undefined) cfg.archives = { path: str(flags.archives, "--archives"), rescanMs: cfg.archives?.rescanMs ?? ARCHIVES_RESCAN_MS };
  mergeOutsideCredentials(cfg, flagName.dockerConfig ?? "dockerConfig", env);
  return cfg;
}
