// Decides which upstream and repository a client request means: `?ns=` (containerd), an in-path
// host (CRI-O, Podman, skopeo), or the default namespace (Docker's registry-mirrors).
import { normalizeRepository, type Target } from "../oci/reference.ts";
import { isHost, looksLikeHost } from "../oci/names.ts";

export type ResolveResult = { ok: true; target: Target } | { ok: false; reason: string };

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
  const normal = normalizeRepository(upstream, repository);
  return normal.ok ? { ok: true, target: normal.target } : normal;
}
