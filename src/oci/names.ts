// Naming rules of the distribution spec: repository names, tags, upstream hosts.

const COMPONENT = "[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*";
const NAME_RE = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const TAG_RE = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
// host or host:port; IPv6 literals in brackets.
const HOST_RE = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*|\[[0-9a-fA-F:.]+\])(?::[0-9]{1,5})?$/;

/** Longest repository name we accept (distribution's limit). */
export const MAX_NAME_LENGTH = 255;

export function isRepositoryName(name: string): boolean {
  return name.length > 0 && name.length <= MAX_NAME_LENGTH && NAME_RE.test(name);
}

export function isTag(tag: string): boolean {
  return TAG_RE.test(tag);
}

export function isHost(host: string): boolean {
  if (host.length === 0 || host.length > 253 || !HOST_RE.test(host)) return false;
  const port = host.match(/:(\d+)$/)?.[1];
  return port === undefined || Number(port) <= 65535;
}

/** A first path segment names an upstream host when it has a dot or a port, or is localhost. */
export function looksLikeHost(segment: string): boolean {
  return segment.includes(".") || segment.includes(":") || segment === "localhost";
}

const DOCKER_HUB_ALIASES = new Set(["docker.io", "index.docker.io", "registry-1.docker.io"]);

/** `docker.io` and its aliases are one upstream namespace; other hosts are lower-cased. */
export function canonicalUpstream(host: string): string {
  const h = host.toLowerCase();
  return DOCKER_HUB_ALIASES.has(h) ? "docker.io" : h;
}
