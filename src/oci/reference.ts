// Image references as users write them: `nginx:1.27`, `registry.k8s.io/pause:3.9`,
// `host:5000/a/b@sha256:…`. A first component with a dot, a port or `localhost` is the registry;
// otherwise it is docker.io, where one-part names get `library/`.
import { isDigest } from "./digest.ts";
import { canonicalUpstream, isHost, isRepositoryName, isTag, looksLikeHost } from "./names.ts";

export interface ImageReference {
  upstream: string;
  repository: string;
  /** A tag, or a digest when the reference pins one. */
  reference: string;
}

export type ParsedReference = { ok: true; ref: ImageReference } | { ok: false; reason: string };

/** A repository on an upstream: what the cache keys records and pulls by. */
export type Target = Pick<ImageReference, "upstream" | "repository">;

/**
 * The one normaliser of an (upstream, repository) pair, for references users write and paths
 * clients request alike: Docker Hub's aliases become `docker.io`, its one-part names get
 * `library/`, other hosts are lower-cased; the repository must follow the spec's grammar.
 */
export function normalizeRepository(host: string, repository: string): { ok: true; target: Target } | { ok: false; reason: string } {
  const upstream = canonicalUpstream(host);
  if (!isRepositoryName(repository)) return { ok: false, reason: `invalid repository name ${JSON.stringify(repository)}` };
  return { ok: true, target: { upstream, repository: upstream === "docker.io" && !repository.includes("/") ? `library/${repository}` : repository } };
}

export function parseImageReference(text: string): ParsedReference {
  const s = text.trim();
  if (!s) return { ok: false, reason: "empty reference" };
  let rest = s;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!isDigest(digest)) return { ok: false, reason: `"${digest}" is not a sha256 or sha512 digest` };
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf("/");
  const colon = rest.lastIndexOf(":");
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!isTag(tag)) return { ok: false, reason: `"${tag}" is not a valid tag` };
  }
  let upstream = "docker.io";
  const slash = rest.indexOf("/");
  if (slash > 0 && looksLikeHost(rest.slice(0, slash))) {
    upstream = rest.slice(0, slash);
    rest = rest.slice(slash + 1);
    if (!isHost(upstream)) return { ok: false, reason: `"${upstream}" is not a registry host` };
  }
  const normal = normalizeRepository(upstream, rest);
  if (!normal.ok) return { ok: false, reason: `"${rest}" is not a valid repository name` };
  return { ok: true, ref: { ...normal.target, reference: digest ?? tag ?? "latest" } };
}

/** `host/repo:tag` or `host/repo@digest`. A tag never contains ":" and a digest always does. */
export function formatReference(r: ImageReference): string {
  return `${r.upstream}/${r.repository}${r.reference.includes(":") ? "@" : ":"}${r.reference}`;
}
