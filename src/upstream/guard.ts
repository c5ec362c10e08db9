// Where the cache may go and what it may carry there: which upstreams a client may name, which
// redirects are followed, which token realms are used and which of them get the configured
// credentials. Every rule here answers a hostile client or upstream (see SECURITY.md).
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { BoundedMap } from "../lib/bounded-map.ts";
import { isInternalAddress, normalizeAddress, registrableDomain } from "./addresses.ts";

export { isInternalAddress, normalizeAddress, registrableDomain };

/** Resolves a host name to its addresses (injected in tests). */
export type Resolver = (hostname: string) => Promise<string[]>;

export const systemResolver: Resolver = async (hostname) => (await lookup(hostname, { all: true })).map((a) => a.address);

/**
 * `public`: any upstream, redirect or realm whose every address is public, internal ones only when
 * listed; `listed`: only listed upstreams, redirects and realms as with `public`; `any`: anything
 * http(s), internal services included.
 */
export type UpstreamPolicy = "public" | "listed" | "any";

/** The one policy the upstream client applies to every URL a client or an upstream chose. */
export interface GuardOptions {
  policy: UpstreamPolicy;
  /** Hosts (`host` or `host:port`) the operator listed: upstreams, mirrors, token hosts, image lists. */
  listed: Iterable<string>;
  resolve?: Resolver;
  now?: () => number;
}

/** The guard refused a URL; `host` is the URL's host, `address` the internal address it resolved to, if any. */
export class GuardRefusal extends Error {
  constructor(message: string, readonly host: string, readonly address?: string) {
    super(message);
    this.name = "GuardRefusal";
  }
}

/** Host names whose addresses are remembered, and for how long. */
const MAX_HOSTS = 10_000;
const ADDRESS_TTL_MS = 30_000;

/** `host:port` as the URL parser spells it, so `2130706437:5000` and `127.0.10.5:5000` are one entry. */
function canonicalHost(name: string): string | null {
  try {
    return new URL(`http://${name}`).host;
  } catch {
    return null;
  }
}

/**
 * Whether the configured credentials may go to a token realm: on the upstream's own host, on a
 * host of the same registrable domain, or on a host the operator allowed for that upstream.
 */
export function credentialsMayGoTo(realm: URL, upstreamHost: URL, tokenHosts: readonly string[] = []): boolean {
  if (realm.hostname === upstreamHost.hostname) return true;
  if (tokenHosts.some((h) => h.toLowerCase() === realm.host || h.toLowerCase() === realm.hostname)) return true;
  const a = registrableDomain(realm.hostname);
  return a !== null && a === registrableDomain(upstreamHost.hostname);
}

/** Where the cache may go: the checks every URL an upstream or a client chose passes first. */
export interface Guard {
  /** Checks a URL the upstream chose (a redirect target, a token realm); `from` pointed at it. Throws GuardRefusal. */
  check(url: URL, from: URL, what: string): Promise<void>;
  /** Checks an upstream a client named that is not configured. Throws GuardRefusal. */
  checkUpstream(url: URL): Promise<void>;
  /** The addresses a host name stands for, each in one spelling; resolved at most once per 30 s. */
  addresses(hostname: string): Promise<string[]>;
  /** Whether the operator listed this upstream (`host` or `host:port`), as opposed to a client naming it. */
  listed(upstream: string): boolean;
  /** Replaces the listed hosts (a config reload). */
  setListed(names: Iterable<string>): void;
}

export function createGuard(opts: GuardOptions): Guard {
  const resolve = opts.resolve ?? systemResolver;
  const now = opts.now ?? Date.now;
  const listed = new Set<string>();
  function setListed(names: Iterable<string>) {
    listed.clear();
    for (const name of names) {
      listed.add(name.toLowerCase());
      const c = canonicalHost(name);
      if (c) listed.add(c);
    }
  }
  setListed(opts.listed);
  const resolved = new BoundedMap<string, { at: number; addresses: Promise<string[]> }>(MAX_HOSTS);

  const isListed = (url: URL) => listed.has(url.host) || listed.has(url.hostname);

  /**
   * The addresses a host name stands for, each in one spelling (normalizeAddress). IP literals are
   * returned as they are; names are resolved once per 30 s, concurrent asks sharing one lookup.
   */
  function addresses(hostname: string): Promise<string[]> {
    const bare = hostname.replace(/^\[|\]$/g, "");
    if (isIP(bare.split("%")[0]!)) return Promise.resolve([normalizeAddress(bare)]);
    const key = hostname.toLowerCase();
    const hit = resolved.get(key);
    if (hit && now() - hit.at < ADDRESS_TTL_MS) return hit.addresses;
    const entry = { at: now(), addresses: resolve(key).then((all) => [...new Set(all.map(normalizeAddress))]) };
    resolved.set(key, entry);
    // A failed lookup is not remembered: the next request asks again.
    entry.addresses.catch(() => resolved.get(key) === entry && resolved.delete(key));
    return entry.addresses;
  }

  /** Refuses a URL unless every address of its host is public. `what` starts the message. */
  async function requirePublic(url: URL, what: string, allow: string): Promise<void> {
    let all: string[];
    try {
      all = await addresses(url.hostname);
    } catch (err) {
      throw new GuardRefusal(`${what} ${url.host}, which does not resolve: ${(err as Error).message}`, url.host);
    }
    const internal = all.find(isInternalAddress);
    if (internal || all.length === 0) {
      const spelled = url.hostname.replace(/^\[|\]$/g, "") === internal ? "" : ` (${internal ?? "no address"})`;
      throw new GuardRefusal(`${what} ${url.host}${spelled}: an internal address, and not listed; ${allow}`, url.host, internal);
    }
  }

  /**
   * Checks a URL the upstream (not the operator) chose: a redirect target or a token realm.
   * `from` is the URL that pointed at it. Throws GuardRefusal with the reason.
   */
  async function check(url: URL, from: URL, what: string): Promise<void> {
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new GuardRefusal(`${what} to a ${url.protocol} URL; only http and https are followed`, url.host);
    }
    if (from.protocol === "https:" && url.protocol === "http:") {
      throw new GuardRefusal(`${what} from HTTPS down to plain HTTP (${url.host})`, url.host);
    }
    if (opts.policy === "any" || url.host === from.host || isListed(url)) return;
    await requirePublic(url, `${what} to`, "to allow it, list the host under registries (a token service under registries[].tokenHosts)");
  }

  /**
   * Checks an upstream a client named (one not configured): under `public` every address it
   * resolves to must be public, under `listed` it must be listed. Throws GuardRefusal.
   */
  async function checkUpstream(url: URL): Promise<void> {
    if (opts.policy === "any" || isListed(url)) return;
    if (opts.policy === "listed") {
      throw new GuardRefusal(`${url.host} is not in this cache's registries list (upstreams: listed)`, url.host);
    }
    await requirePublic(url, "will not contact", "to allow it, list it under registries (or set upstreams: any)");
  }

  const listedName = (upstream: string) => {
    const name = upstream.toLowerCase();
    return listed.has(name) || listed.has(canonicalHost(name) ?? name);
  };
  return { check, checkUpstream, addresses, listed: listedName, setListed };
}
