// Credentials from a Docker `config.json`, the file users already have from `docker login`:
// `auths` (base64 `user:password`), and the credential helpers it names (`credHelpers` per
// registry, `credsStore` for the rest).
import { readFileSync } from "node:fs";
import { canonicalUpstream, isHost } from "../oci/names.ts";
import { ConfigError } from "./error.ts";

export interface DockerConfig {
  /** Upstream → credentials, from `auths`. */
  auths: Map<string, { user: string; password: string }>;
  /** Upstream → helper name (`docker-credential-<name>`), from `credHelpers`. */
  helpers: Map<string, string>;
  /** The helper for registries without their own, from `credsStore`. */
  store?: string;
}

const HELPER_RE = /^[a-zA-Z0-9][a-zA-Z0-9._-]*$/;

export function readDockerConfig(path: string, key: string): DockerConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new ConfigError(key, e.code ? `cannot read ${path}: ${e.code}` : `${path} is not valid JSON`);
  }
  const { auths, credHelpers, credsStore } = (raw ?? {}) as { auths?: unknown; credHelpers?: unknown; credsStore?: unknown };
  const out = new Map<string, { user: string; password: string }>();
  const helpers = new Map<string, string>();
  const helper = (name: unknown, where: string) => {
    if (typeof name !== "string" || !HELPER_RE.test(name)) throw new ConfigError(key, `${path}: ${where} must name a credential helper (docker-credential-<name>), got ${JSON.stringify(name)}`);
    return name;
  };
  if (credHelpers !== undefined) {
    if (credHelpers === null || typeof credHelpers !== "object") throw new ConfigError(key, `${path}: "credHelpers" must be an object`);
    for (const [server, name] of Object.entries(credHelpers)) {
      const host = server.replace(/^[a-z]+:\/\//, "").split("/")[0]!;
      if (isHost(host)) helpers.set(canonicalUpstream(host), helper(name, `credHelpers["${server}"]`));
    }
  }
  const store = credsStore === undefined ? undefined : helper(credsStore, "credsStore");
  if (auths === undefined) return { auths: out, helpers, store };
  if (auths === null || typeof auths !== "object") throw new ConfigError(key, `${path}: "auths" must be an object`);
  for (const [server, entry] of Object.entries(auths as Record<string, { auth?: string; username?: string; password?: string }>)) {
    // Keys are hosts or URLs such as https://index.docker.io/v1/.
    const host = server.replace(/^[a-z]+:\/\//, "").split("/")[0]!;
    if (!isHost(host)) continue;
    let user = entry?.username;
    let password = entry?.password;
    if (entry?.auth) {
      const decoded = Buffer.from(entry.auth, "base64").toString("utf8");
      const i = decoded.indexOf(":");
      if (i <= 0) throw new ConfigError(key, `${path}: auths["${server}"].auth is not base64 of user:password`);
      user = decoded.slice(0, i);
      password = decoded.slice(i + 1);
    }
    if (user && password) out.set(canonicalUpstream(host), { user, password });
  }
  return { auths: out, helpers, store };
}
