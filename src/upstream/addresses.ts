// Which addresses and domains are the public internet, decided by maintained data: ipaddr.js for
// parsing plus the IANA special-purpose registries, tldts for the Public Suffix List.
import ipaddr from "ipaddr.js";
import { getDomain } from "tldts";

/**
 * IANA IPv4 Special-Purpose Address Registry, plus multicast and the reserved 240/4. Some entries
 * are globally reachable anycast (AS112, AMT), but no registry lives there: refusing them costs nothing.
 */
const IPV4_SPECIAL = [
  "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24",
  "192.0.2.0/24", "192.31.196.0/24", "192.52.193.0/24", "192.88.99.0/24", "192.168.0.0/16", "192.175.48.0/24",
  "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",
];

/**
 * IANA IPv6 Special-Purpose Address Registry, plus site-local, multicast and IPv4-compatible
 * addresses. Embedded-IPv4 forms (mapped, compatible, NAT64, 6to4, Teredo) are refused whole: what
 * they reach depends on the network, not on the address.
 */
const IPV6_SPECIAL = [
  "::/128", "::1/128", "::/96", "::ffff:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001::/32",
  "2001:2::/48", "2001:3::/32", "2001:4:112::/48", "2001:10::/28", "2001:20::/28", "2001:30::/28", "2001:db8::/32",
  "2002::/16", "2620:4f:8000::/48", "3fff::/20", "5f00::/16", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
];

type Cidr = [ipaddr.IPv4 | ipaddr.IPv6, number];
const V4: Cidr[] = IPV4_SPECIAL.map((c) => ipaddr.parseCIDR(c));
const V6: Cidr[] = IPV6_SPECIAL.map((c) => ipaddr.parseCIDR(c));
/** IANA's global unicast allocation: every other IPv6 address is special or unassigned. */
const V6_GLOBAL_UNICAST = ipaddr.parseCIDR("2000::/3");

function parse(ip: string): ipaddr.IPv4 | ipaddr.IPv6 | null {
  const bare = ip.replace(/^\[|\]$/g, "");
  try {
    return ipaddr.parse(bare);
  } catch {
    return null;
  }
}

/**
 * Whether an address is anything but globally routable unicast: loopback, private, link-local,
 * CGNAT, documentation, benchmarking, multicast, reserved, and every IPv6 form that embeds an IPv4
 * address. Anything that does not parse as an address is internal too.
 */
export function isInternalAddress(ip: string): boolean {
  const a = parse(ip);
  if (!a) return true;
  if (a.range() !== "unicast") return true;
  if (a.kind() === "ipv4") return V4.some((c) => a.match(c));
  return !a.match(V6_GLOBAL_UNICAST) || V6.some((c) => a.match(c));
}

/**
 * One spelling per address: `::ffff:127.0.0.60` and `[::ffff:7f00:3c]` become `127.0.0.60`, IPv6
 * is compressed and lower-cased. A string that is not an address is returned as it is.
 */
export function normalizeAddress(ip: string): string {
  const bare = ip.replace(/^\[|\]$/g, "");
  try {
    return ipaddr.process(bare).toString();
  } catch {
    return ip;
  }
}

/**
 * Wildcard DNS services missing from the Public Suffix List: any name under them resolves to the
 * address it spells, so two names there share nothing but the service.
 */
const WILDCARD_DNS = new Set(["nip.io", "sslip.io", "xip.io", "nip.direct", "traefik.me", "localtest.me", "lvh.me"]);

/**
 * The registrable domain of a host name by the Public Suffix List, private section included
 * (`auth.docker.io` → `docker.io`, `a.s3.us-west-2.amazonaws.com` → itself); null for IP addresses,
 * for public suffixes themselves, and for names under wildcard DNS services.
 */
export function registrableDomain(hostname: string): string | null {
  const h = hostname.toLowerCase().replace(/\.$/, "");
  const domain = getDomain(h, { allowPrivateDomains: true });
  return domain && !WILDCARD_DNS.has(domain) ? domain : null;
}
