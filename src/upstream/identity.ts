// One identity per place an upstream request really goes: the resolved address and port. The caps
// on open requests are counted per identity, so `2130706492`, `0x7f00003c`, `127.60`,
// `[::ffff:127.0.0.60]` or any number of wildcard DNS names for one host share one cap instead of
// each bringing a cap of its own.
import { isIP } from "node:net";

/** Resolves a host name to its addresses (the guard's cached resolver). */
export type AddressLookup = (hostname: string) => Promise<string[]>;

/** An IPv6 address that embeds an IPv4 one (`::ffff:7f00:3c`, `::ffff:127.0.0.60`) as that IPv4 address. */
export function canonicalAddress(ip: string): string {
  const bare = ip.replace(/^\[|\]$/g, "").toLowerCase();
  if (isIP(bare) !== 6) return bare;
  const dotted = bare.match(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/);
  if (dotted) return dotted[1]!;
  const hex = bare.match(/^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/);
  if (!hex) return bare;
  const n = (parseInt(hex[1]!, 16) << 16 | parseInt(hex[2]!, 16)) >>> 0;
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

/** Longest wait for a name to resolve: a slow resolver must not hold requests before their slot. */
const LOOKUP_TIMEOUT_MS = 2000;

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: Timer | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error("lookup timed out")), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

function defaultPort(url: URL): string {
  return url.port || (url.protocol === "https:" ? "443" : "80");
}

/**
 * The identity of an endpoint's origin: `address:port` of its lowest resolved address (a name
 * that resolves to several addresses is one identity), or `host:port` when it does not resolve
 * (the request will fail on its own; its cap is then its name's).
 */
export async function identityOf(url: URL, lookup: AddressLookup): Promise<string> {
  const host = url.hostname.replace(/^\[|\]$/g, "");
  let addresses: string[];
  try {
    addresses = isIP(host) ? [host] : await withTimeout(lookup(host), LOOKUP_TIMEOUT_MS);
  } catch {
    addresses = [];
  }
  const first = addresses.map(canonicalAddress).sort()[0];
  const address = first ?? host.toLowerCase();
  return `${address.includes(":") ? `[${address}]` : address}:${defaultPort(url)}`;
}
