// Credentials from a Docker `config.json` (`auths` with base64 `user:password`), the file users
// already have from `docker login`.
import { readFileSync } from "node:fs";
import { canonicalUpstream, isHost } from "../oci/names.ts";
import { ConfigError } from "./error.ts";

/** Upstream → credentials, from the `auths` section. */
export function readDockerConfig(path: string, key: string): Map<string, { user: string; password: string }> {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new ConfigError(key, e.code ? `cannot read ${path}: ${e.code}` : `${path} is not valid JSON`);
  }
  const auths = (raw as { auths?: unknown })?.auths;
  const out = new Map<string, { user: string; password: string }>();
  if (auths === undefined) return out;
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
  return out;
}
