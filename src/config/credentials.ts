// Credentials from outside the config file: a Docker config.json (`auths`, `credHelpers`,
// `credsStore`) and the UPSTREAM_CREDENTIALS variable fill registries that have none of their own.
import { canonicalUpstream, isHost } from "../oci/names.ts";
import { readDockerConfig } from "./docker-config.ts";
import { ConfigError } from "./error.ts";
import type { Config, RegistryEntry } from "./schema.ts";
import { isObject } from "./values.ts";

type Env = Record<string, string | undefined>;

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
export function mergeOutsideCredentials(cfg: Config, dockerKey: string, env: Env) {
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

