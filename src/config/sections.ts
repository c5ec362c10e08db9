// Validators for the configuration's sections: registries, tag policies, pruning, server TLS,
// downstream users. Each returns the typed section or throws a ConfigError naming the key.
import { ConfigError } from "./error.ts";
import { ARCHIVES_RESCAN_MS, type ArchivesConfig, type DownstreamUser, type PruneConfig, type ServerTls, type TagPolicy } from "./schema.ts";
import { bool, compilePattern, duration, isObject, keysOf, readFileText, str } from "./values.ts";

type Env = Record<string, string | undefined>;


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
