// Validators for the configuration's sections: registries, tag policies, pruning, server TLS,
// downstream users. Each returns the typed section or throws a ConfigError naming the key.
import { canonicalUpstream, isHost } from "../oci/names.ts";
import { ConfigError } from "./error.ts";
import { ARCHIVES_RESCAN_MS, type ArchivesConfig, type DownstreamUser, type PruneConfig, type RegistryEntry, type ServerTls, type TagPolicy } from "./schema.ts";
import { bool, compilePattern, duration, isObject, keysOf, readFileText, str } from "./values.ts";

type Env = Record<string, string | undefined>;

export function registry(v: unknown, key: string, env: Env): RegistryEntry {
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
      ca: t.ca === undefined ? undefined : readFileText(t.ca, `${key}.tls.ca`),
      cert: t.cert === undefined ? undefined : readFileText(t.cert, `${key}.tls.cert`),
      key: t.key === undefined ? undefined : readFileText(t.key, `${key}.tls.key`),
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

export function tagPolicies(v: unknown, key: string): TagPolicy[] {
  if (!Array.isArray(v)) throw new ConfigError(key, "must be a list of {match, revalidateAfter}");
  return v.map((p, i) => {
    const k = `${key}[${i}]`;
    if (!isObject(p)) throw new ConfigError(k, "must be a mapping with match and revalidateAfter");
    keysOf(p, k, ["match", "revalidateAfter"]);
    const match = str(p.match, `${k}.match`);
    compilePattern(match, `${k}.match`);
    return { match, revalidateAfterMs: duration(p.revalidateAfter, `${k}.revalidateAfter`) };
  });
}

export function pruneConfig(v: unknown, key: string): PruneConfig {
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

export function serverTls(v: unknown, key: string): ServerTls {
  if (!isObject(v)) throw new ConfigError(key, "must be a mapping with cert and key");
  keysOf(v, key, ["cert", "key", "ca", "clientAuth"]);
  const clientAuth = v.clientAuth ?? "none";
  if (clientAuth !== "none" && clientAuth !== "verify") throw new ConfigError(`${key}.clientAuth`, "must be none or verify");
  if (clientAuth === "verify" && v.ca === undefined) throw new ConfigError(`${key}.ca`, "is required when clientAuth is verify");
  return {
    cert: readFileText(v.cert, `${key}.cert`),
    key: readFileText(v.key, `${key}.key`),
    ca: v.ca === undefined ? undefined : readFileText(v.ca, `${key}.ca`),
    clientAuth,
  };
}

export function users(v: unknown, key: string): DownstreamUser[] {
  if (!Array.isArray(v)) throw new ConfigError(key, "must be a list of {user, password}");
  return v.map((u, i) => {
    if (!isObject(u)) throw new ConfigError(`${key}[${i}]`, "must be a mapping with user and password");
    keysOf(u, `${key}[${i}]`, ["user", "password"]);
    return { user: str(u.user, `${key}[${i}].user`), password: str(u.password, `${key}[${i}].password`) };
  });
}

/** Reads an htpasswd file; only bcrypt entries (`htpasswd -B`) are accepted. */
export function htpasswd(path: unknown, key: string): DownstreamUser[] {
  const text = readFileText(path, key);
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

/** `admin: {token | tokenFromEnv}`: the admin API's bearer token (at least 16 characters). */
export function adminToken(v: unknown, key: string, env: Env): string {
  if (!isObject(v)) throw new ConfigError(key, "must be a mapping with token or tokenFromEnv");
  keysOf(v, key, ["token", "tokenFromEnv"]);
  if ((v.token === undefined) === (v.tokenFromEnv === undefined)) throw new ConfigError(key, "give exactly one of token or tokenFromEnv");
  let token: string;
  if (v.tokenFromEnv !== undefined) {
    const name = str(v.tokenFromEnv, `${key}.tokenFromEnv`);
    const value = env[name];
    if (!value) throw new ConfigError(`${key}.tokenFromEnv`, `environment variable ${name} is not set`);
    token = value;
  } else token = str(v.token, `${key}.token`);
  if (token.length < 16) throw new ConfigError(key, "the token must be at least 16 characters");
  return token;
}

/** `archives: {path, rescan}`: a directory of .oci archives, rescanned every `rescan` (default 10m, at least 1s). */
export function archives(v: unknown, key: string): ArchivesConfig {
  if (!isObject(v)) throw new ConfigError(key, "must be a mapping with path and optionally rescan");
  keysOf(v, key, ["path", "rescan"]);
  const rescanMs = v.rescan === undefined ? ARCHIVES_RESCAN_MS : duration(v.rescan, `${key}.rescan`);
  if (rescanMs < 1000) throw new ConfigError(`${key}.rescan`, "must be at least 1s");
  return { path: str(v.path, `${key}.path`), rescanMs };
}
