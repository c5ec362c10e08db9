// Where the cache may go and what it may carry there: which redirects are followed, which token
// realms are used and which of them get the configured credentials. Every rule here answers a
// hostile upstream (see SECURITY.md).
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";

/** Resolves a host name to its addresses (injected in tests). */
export type Resolver = (hostname: string) => Promise<string[]>;

export const systemResolver: Resolver = async (hostname) => (await lookup(hostname, { all: true })).map((a) => a.address);

/** The one policy the upstream client applies to every URL it did not build itself. */
export interface GuardOptions {
  /** `upstreams: listed`: internal addresses are refused unless their host is listed. */
  listedOnly: boolean;
  /** Hosts (`host` or `host:port`) the operator listed. */
  listed: ReadonlySet<string>;
  resolve?: Resolver;
}

export class GuardRefusal extends Error {}

function ipv4Internal(ip: string): boolean {
  const [a, b] = ip.split(".").map(Number) as [number, number];
  return a === 0 || a === 10 || a === 127 || a >= 224 || (a === 100 && b >= 64 && b <= 127) ||
    (a === 169 && b === 254) || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) ||
    (a === 198 && (b === 18 || b === 19));
}

/** Loopback, private, link-local, CGNAT, multicast, unspecified: anything that is not the public internet. */
export function isInternalAddress(ip: string): boolean {
  const bare = ip.replace(/^\[|\]$/g, "").toLowerCase();
  if (isIP(bare) === 4) return ipv4Internal(bare);
  if (isIP(bare) !== 6) return true;
  const mapped = bare.match(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/);
  if (mapped) return ipv4Internal(mapped[1]!);
  const hex = bare.match(/^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/);
  if (hex) {
    const n = (parseInt(hex[1]!, 16) << 16) | parseInt(hex[2]!, 16);
    return ipv4Internal([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join("."));
  }
  return bare === "::" || bare === "::1" || /^f[cd]/.test(bare) || /^fe[89ab]/.test(bare) || /^ff/.test(bare) || bare.startsWith("64:ff9b:");
}

/** Public suffixes of two labels that registries live under; enough to keep `a.co.uk` from matching `b.co.uk`. */
const TWO_LABEL_SUFFIXES = new Set([
  "co.uk", "org.uk", "ac.uk", "gov.uk", "com.au", "net.au", "org.au", "co.jp", "ne.jp", "or.jp", "co.nz", "com.br", "com.cn",
  "com.tw", "co.kr", "co.in", "co.za", "com.mx", "com.sg", "com.hk", "amazonaws.com", "azurecr.io", "cloudfront.net",
  "herokuapp.com", "github.io", "gitlab.io", "appspot.com", "azurewebsites.net", "pkg.dev", "r2.dev", "workers.dev",
]);

/** The registrable domain of a host name (`auth.docker.io` → `docker.io`); null for IP addresses. */
export function registrableDomain(hostname: string): string | null {
  const h = hostname.toLowerCase().replace(/\.$/, "");
  if (isIP(h.replace(/^\[|\]$/g, ""))) return null;
  const labels = h.split(".");
  if (labels.length < 2) return h;
  const lastTwo = labels.slice(-2).join(".");
  if (TWO_LABEL_SUFFIXES.has(lastTwo)) return labels.length >= 3 ? labels.slice(-3).join(".") : null;
  return lastTwo;
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

export function createGuard(opts: GuardOptions) {
  const resolve = opts.resolve ?? systemResolver;

  /**
   * Checks a URL the upstream (not the operator) chose: a redirect target or a token realm.
   * `from` is the URL that pointed at it. Throws GuardRefusal with the reason.
   */
  async function check(url: URL, from: URL, what: string): Promise<void> {
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new GuardRefusal(`${what} to a ${url.protocol} URL; only http and https are followed`);
    }
    if (from.protocol === "https:" && url.protocol === "http:") {
      throw new GuardRefusal(`${what} from HTTPS down to plain HTTP (${url.host})`);
    }
    if (!opts.listedOnly || url.host === from.host || opts.listed.has(url.host) || opts.listed.has(url.hostname)) return;
    let addresses: string[];
    try {
      addresses = isIP(url.hostname.replace(/^\[|\]$/g, "")) ? [url.hostname] : await resolve(url.hostname);
    } catch (err) {
      throw new GuardRefusal(`${what} to ${url.host}, which does not resolve: ${(err as Error).message}`);
    }
    const internal = addresses.find(isInternalAddress);
    if (internal || addresses.length === 0) {
      throw new GuardRefusal(`${what} to ${url.host} (${internal ?? "no address"}), an internal address that is not in the registries list`);
    }
  }

  return { check };
}

export type Guard = ReturnType<typeof createGuard>;
