// Builds the effective Config: defaults, then the YAML file, then command-line flags. Every
// problem is reported with the key it concerns, e.g. `registries[0].scheme: must be http or https`.
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { canonicalUpstream, isHost } from "../oci/names.ts";
import { readDockerConfig } from "./docker-config.ts";
import { ConfigError } from "./error.ts";
import { parseDuration } from "./duration.ts";
import { DEFAULTS, LOG_LEVELS, type Config, type DownstreamUser, type LogLevel, type PruneConfig, type RegistryEntry, type ServerTls, type TagPolicy } from "./schema.ts";

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
}

type Env = Record<string, string | undefined>;
type Raw = Record<string, unknown>;

const TOP_KEYS = new Set(["imagePath", "host", "port", "logLevel", "logFormat", "defaultNs", "pullTimeout", "airGapped", "revalidateAfter", "registries",
  "dockerConfig", "users", "htpasswd", "serverTlsConfig", "tagPolicies", "alwaysPullLatest", "upstreams", "pruneConfig", "maxUpstreamConnections"]);

function isObject(v: unknown): v is Raw {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function str(v: unknown, key: string): string {
  if (typeof v !== "string" || v === "") throw new ConfigError(key, "must be a non-empty string");
  return v;
}

function bool(v: unknown, key: string): boolean {
  if (typeof v === "boolean") return v;
  if (v === "true") return true;
  if (v === "false") return false;
  throw new ConfigError(key, "must be true or false");
}

function port(v: unknown, key: string): number {
  const n = typeof v === "number" ? v : typeof v === "string" && /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new ConfigError(key, `must be a port number 0-65535, got ${JSON.stringify(v)}`);
  return n;
}

function millis(v: unknown, key: string): number {
  // A bare number is milliseconds for pullTimeout (the seed's unit).
  if (typeof v === "number" || (typeof v === "string" && /^\d+$/.test(v))) {
    const n = Number(v);
    if (n > 0) return n;
  } else if (typeof v === "string") {
    const d = parseDuration(v);
    if (d !== null && d > 0) return d;
  }
  throw new ConfigError(key, `must be a positive number of milliseconds or a duration like 30s, got ${JSON.stringify(v)}`);
}

function duration(v: unknown, key: string): number {
  const d = typeof v === "string" || typeof v === "number" ? parseDuration(v) : null;
  if (d === null) throw new ConfigError(key, `must be a duration like 30s, 5m or 1h, got ${JSON.stringify(v)}`);
  return d;
}

function readPem(path: unknown, key: string): string {
  const p = str(path, key);
  try {
    return readFileSync(p, "utf8");
  } catch (err) {
    throw new ConfigError(key, `cannot read ${p}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

function registry(v: unknown, key: string, env: Env): RegistryEntry {
  if (!isObject(v)) throw new ConfigError(key, "must be a mapping with at least a name");
  for (const k of Object.keys(v)) {
    if (!["name", "scheme", "auth", "tls", "tokenHosts"].includes(k)) throw new ConfigError(`${key}.${k}`, "unknown key");
  }
  const name = str(v.name, `${key}.name`);
  if (!isHost(name)) throw new ConfigError(`${key}.name`, `must be a host or host:port, got ${JSON.stringify(name)}`);
  const scheme = v.scheme ?? "https";
  if (scheme !== "http" && scheme !== "https") throw new ConfigError(`${key}.scheme`, "must be http or https");
  const entry: RegistryEntry = { name: canonicalUpstream(name), scheme };
  if (v.auth !== undefined) {
    const a = v.auth;
    if (!isObject(a)) throw new ConfigError(`${key}.auth`, "must be a mapping with user and password or passwordFromEnv");
    for (const k of Object.keys(a)) {
      if (!["user", "password", "passwordFromEnv"].includes(k)) throw new ConfigError(`${key}.auth.${k}`, "unknown key");
    }
    const user = str(a.user, `${key}.auth.user`);
    let password: string;
    if (a.passwordFromEnv !== undefined) {
      const envName = str(a.passwordFromEnv, `${key}.auth.passwordFromEnv`);
      const value = env[envName];
      if (value === undefined || value === "") throw new ConfigError(`${key}.auth.passwordFromEnv`, `environment variable ${envName} is not set`);
      password = value;
    } else {
      password = str(a.password, `${key}.auth.password`);
    }
    entry.auth = { user, password };
  }
  if (v.tls !== undefined) {
    const t = v.tls;
    if (!isObject(t)) throw new ConfigError(`${key}.tls`, "must be a mapping");
    for (const k of Object.keys(t)) {
      if (!["ca", "cert", "key", "insecureSkipVerify"].includes(k)) throw new ConfigError(`${key}.tls.${k}`, "unknown key");
    }
    if ((t.cert === undefined) !== (t.key === undefined)) {
      throw new ConfigError(`${key}.tls.${t.cert === undefined ? "cert" : "key"}`, "cert and key must be given together");
    }
    entry.tls = {
      ca: t.ca === undefined ? undefined : readPem(t.ca, `${key}.tls.ca`),
      cert: t.cert === undefined ? undefined : readPem(t.cert, `${key}.tls.cert`),
      key: t.key === undefined ? undefined : readPem(t.key, `${key}.tls.key`),
      insecureSkipVerify: t.insecureSkipVerify === undefined ? undefined : bool(t.insecureSkipVerify, `${key}.tls.insecureSkipVerify`),
    };
  }
  if (v.tokenHosts !== undefined) {
    if (!Array.isArray(v.tokenHosts)) throw new ConfigError(`${key}.tokenHosts`, "must be a list of hosts");
    entry.tokenHosts = v.tokenHosts.map((h, i) => {
      const host = str(h, `${key}.tokenHosts[${i}]`);
      if (!isHost(host)) throw new ConfigError(`${key}.tokenHosts[${i}]`, `must be a host or host:port, got ${JSON.stringify(host)}`);
      return host.toLowerCase();
    });
  }
  return entry;
}

function logLevel(v: unknown, key: string): LogLevel {
  if (typeof v === "string" && (LOG_LEVELS as string[]).includes(v)) return v as LogLevel;
  throw new ConfigError(key, `must be one of ${LOG_LEVELS.join(", ")}`);
}

function keysOf(v: Raw, key: string, allowed: string[]) {
  for (const k of Object.keys(v)) if (!allowed.includes(k)) throw new ConfigError(`${key}.${k}`, "unknown key");
}

function tagPolicies(v: unknown, key: string): TagPolicy[] {
  if (!Array.isArray(v)) throw new ConfigError(key, "must be a list of {match, revalidateAfter}");
  return v.map((p, i) => {
    const k = `${key}[${i}]`;
    if (!isObject(p)) throw new ConfigError(k, "must be a mapping with match and revalidateAfter");
    keysOf(p, k, ["match", "revalidateAfter"]);
    const match = str(p.match, `${k}.match`);
    try {
      new RegExp(match);
    } catch (err) {
      throw new ConfigError(`${k}.match`, `not a regular expression: ${(err as Error).message}`);
    }
    return { match, revalidateAfterMs: duration(p.revalidateAfter, `${k}.revalidateAfter`) };
  });
}

function pruneConfig(v: unknown, key: string): PruneConfig {
  if (!isObject(v)) throw new ConfigError(key, "must be a mapping with enabled, duration, type and frequency");
  keysOf(v, key, ["enabled", "duration", "type", "frequency", "count", "dryRun"]);
  const type = v.type ?? "accessed";
  if (type !== "accessed" && type !== "created") throw new ConfigError(`${key}.type`, "must be accessed or created");
  const count = v.count ?? -1;
  if (typeof count !== "number" || !Number.isInteger(count) || count < -1 || count === 0) throw new ConfigError(`${key}.count`, "must be -1 (no limit) or a positive whole number");
  const frequencyMs = duration(v.frequency ?? "1d", `${key}.frequency`);
  if (frequencyMs < 60_000) throw new ConfigError(`${key}.frequency`, "must be at least 1m");
  return {
    enabled: v.enabled === undefined ? false : bool(v.enabled, `${key}.enabled`),
    olderThanMs: duration(v.duration ?? "30d", `${key}.duration`),
    type, frequencyMs, count,
    dryRun: v.dryRun === undefined ? false : bool(v.dryRun, `${key}.dryRun`),
  };
}

function serverTls(v: unknown, key: string): ServerTls {
  if (!isObject(v)) throw new ConfigError(key, "must be a mapping with cert and key");
  keysOf(v, key, ["cert", "key", "ca", "clientAuth"]);
  const clientAuth = v.clientAuth ?? "none";
  if (clientAuth !== "none" && clientAuth !== "verify") throw new ConfigError(`${key}.clientAuth`, "must be none or verify");
  if (clientAuth === "verify" && v.ca === undefined) throw new ConfigError(`${key}.ca`, "is required when clientAuth is verify");
  return {
    cert: readPem(v.cert, `${key}.cert`),
    key: readPem(v.key, `${key}.key`),
    ca: v.ca === undefined ? undefined : readPem(v.ca, `${key}.ca`),
    clientAuth,
  };
}

function users(v: unknown, key: string): DownstreamUser[] {
  if (!Array.isArray(v)) throw new ConfigError(key, "must be a list of {user, password}");
  return v.map((u, i) => {
    if (!isObject(u)) throw new ConfigError(`${key}[${i}]`, "must be a mapping with user and password");
    keysOf(u, `${key}[${i}]`, ["user", "password"]);
    return { user: str(u.user, `${key}[${i}].user`), password: str(u.password, `${key}[${i}].password`) };
  });
}

/** Reads an htpasswd file; only bcrypt entries (`htpasswd -B`) are accepted. */
function htpasswd(path: unknown, key: string): DownstreamUser[] {
  const text = readPem(path, key);
  const out: DownstreamUser[] = [];
  text.split("\n").forEach((line, i) => {
    const l = line.trim();
    if (!l || l.startsWith("#")) return;
    const c = l.indexOf(":");
    const hash = l.slice(c + 1);
    if (c <= 0 || !/^\$2[aby]\$/.test(hash)) {
      throw new ConfigError(key, `${path} line ${i + 1}: only bcrypt entries (htpasswd -B) are supported`);
    }
    out.push({ user: l.slice(0, c), password: hash });
  });
  return out;
}

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
    if (raw.upstreams !== "any" && raw.upstreams !== "listed") throw new ConfigError(where("upstreams"), "must be any or listed");
    cfg.upstreams = raw.upstreams;
  }
  if (raw.maxUpstreamConnections !== undefined) {
    const n = raw.maxUpstreamConnections;
    if (typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > 1024) throw new ConfigError(where("maxUpstreamConnections"), "must be a whole number from 1 to 1024");
    cfg.maxUpstreamConnections = n;
  }
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
function mergeDockerCredentials(cfg: Config, key: string) {
  for (const [name, auth] of readDockerConfig(cfg.dockerConfig!, key)) {
    const entry = cfg.registries.find((r) => r.name === name);
    if (!entry) cfg.registries.push({ name, scheme: "https", auth });
    else if (!entry.auth) entry.auth = auth;
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

export function loadConfig(flags: ConfigFlags, env: Env = process.env): Config {
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
  const set = (key: string, flag: string, v: unknown) => {
    if (v !== undefined) {
      flagRaw[key] = v;
      flagName[key] = flag;
    }
  };
  set("imagePath", "--image-path", flags.imagePath);
  set("logLevel", "--log-level", flags.logLevel);
  set("logFormat", "--log-format", flags.logFormat);
  set("host", "--host", flags.host);
  set("port", "--port", flags.port);
  set("defaultNs", "--default-ns", flags.defaultNs);
  set("pullTimeout", "--pull-timeout", flags.pullTimeout);
  set("airGapped", "--air-gapped", flags.airGapped);
  set("revalidateAfter", "--revalidate-after", flags.revalidateAfter);
  set("dockerConfig", "--docker-config", flags.dockerConfig);
  apply(cfg, flagRaw, (k) => flagName[k] ?? k, env);
  if (cfg.dockerConfig) mergeDockerCredentials(cfg, flagName.dockerConfig ?? "dockerConfig");
  return cfg;
}
