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
  upstream = canonicalUpstream(upstream);
  if (!isRepositoryName(rest)) return { ok: false, reason: `"${rest}" is not a valid repository name` };
  if (upstream === "docker.io" && !rest.includes("/")) rest = `library/${rest}`;
  return { ok: true, ref: { upstream, repository: rest, reference: digest ?? tag ?? "latest" } };
}

export function formatReference(r: ImageReference): string {
  return `${r.upstream}/${r.repository}${isDigest(r.reference) ? "@" : ":"}${r.reference}`;
}
