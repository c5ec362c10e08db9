// `registries[]`: one entry per upstream — scheme, credentials, TLS, token hosts, mirror
// endpoints tried before the origin, and the User-Agent sent there.
import { canonicalUpstream, isHost } from "../oci/names.ts";
import { ConfigError } from "./error.ts";
import type { RegistryEntry, RegistryEndpoint } from "./schema.ts";
import { bool, isObject, keysOf, readFileText, str } from "./values.ts";

type Env = Record<string, string | undefined>;

function auth(a: unknown, key: string, env: Env): { user: string; password: string } {
  if (!isObject(a)) throw new ConfigError(key, "must be a mapping with user and password or passwordFromEnv");
  keysOf(a, key, ["user", "password", "passwordFromEnv"]);
  const user = str(a.user, `${key}.user`);
  if (a.passwordFromEnv === undefined) return { user, password: str(a.password, `${key}.password`) };
  const envName = str(a.passwordFromEnv, `${key}.passwordFromEnv`);
  const value = env[envName];
  if (value === undefined || value === "") throw new ConfigError(`${key}.passwordFromEnv`, `environment variable ${envName} is not set`);
  return { user, password: value };
}

function tls(t: unknown, key: string): NonNullable<RegistryEntry["tls"]> {
  if (!isObject(t)) throw new ConfigError(key, "must be a mapping");
  keysOf(t, key, ["ca", "cert", "key", "insecureSkipVerify"]);
  if ((t.cert === undefined) !== (t.key === undefined)) {
    throw new ConfigError(`${key}.${t.cert === undefined ? "cert" : "key"}`, "cert and key must be given together");
  }
  return {
    ca: t.ca === undefined ? undefined : readFileText(t.ca, `${key}.ca`),
    cert: t.cert === undefined ? undefined : readFileText(t.cert, `${key}.cert`),
    key: t.key === undefined ? undefined : readFileText(t.key, `${key}.key`),
    insecureSkipVerify: t.insecureSkipVerify === undefined ? undefined : bool(t.insecureSkipVerify, `${key}.insecureSkipVerify`),
  };
}

function endpoint(v: unknown, key: string, env: Env): RegistryEndpoint {
  const raw = typeof v === "string" ? { url: v } : v;
  if (!isObject(raw)) throw new ConfigError(key, "must be a URL or a mapping with url (and auth, tls)");
  keysOf(raw, key, ["url", "auth", "tls"]);
  const url = str(raw.url, `${key}.url`);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError(`${key}.url`, `not a URL: ${JSON.stringify(url)}`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw new ConfigError(`${key}.url`, "must be an http:// or https:// URL");
  if (parsed.search || parsed.hash || parsed.username) throw new ConfigError(`${key}.url`, "may have a path but no query, fragment or credentials");
  return {
    url: `${parsed.origin}${parsed.pathname.replace(/\/+$/, "")}`,
    auth: raw.auth === undefined ? undefined : auth(raw.auth, `${key}.auth`, env),
    tls: raw.tls === undefined ? undefined : tls(raw.tls, `${key}.tls`),
  };
}

export function registry(v: unknown, key: string, env: Env): RegistryEntry {
  if (!isObject(v)) throw new ConfigError(key, "must be a mapping with at least a name");
  keysOf(v, key, ["name", "scheme", "auth", "tls", "tokenHosts", "endpoints", "originFallback", "userAgent"]);
  const name = str(v.name, `${key}.name`);
  if (!isHost(name)) throw new ConfigError(`${key}.name`, `must be a host or host:port, got ${JSON.stringify(name)}`);
  const scheme = v.scheme ?? "https";
  if (scheme !== "http" && scheme !== "https") throw new ConfigError(`${key}.scheme`, "must be http or https");
  const entry: RegistryEntry = { name: canonicalUpstream(name), scheme, originFallback: true };
  if (v.auth !== undefined) entry.auth = auth(v.auth, `${key}.auth`, env);
  if (v.tls !== undefined) entry.tls = tls(v.tls, `${key}.tls`);
  if (v.tokenHosts !== undefined) {
    if (!Array.isArray(v.tokenHosts)) throw new ConfigError(`${key}.tokenHosts`, "must be a list of hosts");
    entry.tokenHosts = v.tokenHosts.map((h, i) => {
      const host = str(h, `${key}.tokenHosts[${i}]`);
      if (!isHost(host)) throw new ConfigError(`${key}.tokenHosts[${i}]`, `must be a host or host:port, got ${JSON.stringify(host)}`);
      return host.toLowerCase();
    });
  }
  if (v.endpoints !== undefined) {
    if (!Array.isArray(v.endpoints)) throw new ConfigError(`${key}.endpoints`, "must be a list of URLs or {url, auth, tls}");
    entry.endpoints = v.endpoints.map((e, i) => endpoint(e, `${key}.endpoints[${i}]`, env));
  }
  if (v.originFallback !== undefined) entry.originFallback = bool(v.originFallback, `${key}.originFallback`);
  if (!entry.originFallback && !entry.endpoints?.length) throw new ConfigError(`${key}.originFallback`, "false needs at least one endpoint");
  if (v.userAgent !== undefined) {
    const ua = str(v.userAgent, `${key}.userAgent`);
    if (/[\r\n\x00-\x1f\x7f]/.test(ua)) throw new ConfigError(`${key}.userAgent`, "must not contain control characters");
    entry.userAgent = ua;
  }
  return entry;
}
