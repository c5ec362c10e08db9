// One identity per place an upstream request really goes: the resolved address and port. The caps
// on open requests are counted per identity, so `2130706492`, `0x7f00003c`, `127.60`,
// `[::ffff:127.0.0.60]` or any number of wildcard DNS names for one host share one cap instead of
// each bringing a cap of its own.
import { isIP } from "node:net";
import { normalizeAddress } from "./addresses.ts";

/** Resolves a host name to its addresses (the guard's cached resolver). */
export type AddressLookup = (hostname: string) => Promise<string[]>;

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
  const first = addresses.map(normalizeAddress).sort()[0];
  const address = first ?? host.toLowerCase();
  return `${address.includes(":") ? `[${address}]` : address}:${defaultPort(url)}`;
}
