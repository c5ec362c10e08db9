// Decides which upstream and repository a client request means: `?ns=` (containerd), an in-path
// host (CRI-O, Podman, skopeo), or the default namespace (Docker's registry-mirrors).
import { canonicalUpstream, isHost, isRepositoryName, looksLikeHost } from "../oci/names.ts";

export interface Target {
  /** Upstream namespace as clients name it: `docker.io`, `registry.k8s.io`, `127.0.0.2`. */
  upstream: string;
  repository: string;
}

export type ResolveResult = { ok: true; target: Target } | { ok: false; reason: string };

export { canonicalUpstream };

/** The host:port to connect to for an upstream namespace. */
export function upstreamEndpoint(upstream: string): string {
  return upstream === "docker.io" ? "registry-1.docker.io" : upstream;
}

/**
 * Resolves the `<name>` of a `/v2/<name>/...` request. Precedence: `ns` query parameter, then a
 * host-like first path segment, then the default namespace.
 */
export function resolveTarget(name: string, ns: string | null, defaultNs: string): ResolveResult {
  let upstream: string;
  let repository: string;
  const slash = name.indexOf("/");
  if (ns !== null && ns !== "") {
    upstream = ns;
    repository = name;
  } else if (slash > 0 && looksLikeHost(name.slice(0, slash))) {
    upstream = name.slice(0, slash);
    repository = name.slice(slash + 1);
  } else {
    upstream = defaultNs;
    repository = name;
  }
  if (!isHost(upstream)) return { ok: false, reason: `invalid upstream host ${JSON.stringify(upstream)}` };
  upstream = canonicalUpstream(upstream);
  if (!isRepositoryName(repository)) {
    return { ok: false, reason: `invalid repository name ${JSON.stringify(repository)}` };
  }
  if (upstream === "docker.io" && !repository.includes("/")) repository = `library/${repository}`;
  return { ok: true, target: { upstream, repository } };
}
