// `registries[]` as a schema: one entry per upstream — scheme, credentials, TLS, token hosts,
// mirror endpoints tried before the origin, and the User-Agent sent there.
import * as v from "valibot";
import { canonicalUpstream } from "../oci/names.ts";
import { bool, crossCheck, doc, host, mapping, oneOf, str } from "./values.ts";

const auth = mapping({
  user: doc(str(), "user for basic auth and for bearer-token servers"),
  password: doc(v.optional(str()), "its password …"),
  passwordFromEnv: doc(v.optional(str()), "… or the name of an environment variable holding it"),
}, "must be a mapping with user and password or passwordFromEnv");
const authChecked = v.pipe(auth, crossCheck((a) =>
  a.password === undefined && a.passwordFromEnv === undefined ? { key: "password", problem: "must be a non-empty string" } : undefined));

export const tls = v.pipe(mapping({
  ca: doc(v.optional(str()), "PEM file of an extra CA to trust (added to the system trust store)"),
  cert: doc(v.optional(str()), "client certificate for mutual TLS (with `key`)"),
  key: doc(v.optional(str()), "its private key (with `cert`)"),
  insecureSkipVerify: doc(v.optional(bool()), "do not verify the upstream's certificate", { default: "`false`" }),
}, "must be a mapping"), crossCheck((t) =>
  (t.cert === undefined) !== (t.key === undefined) ? { key: t.cert === undefined ? "cert" : "key", problem: "cert and key must be given together" } : undefined));

/** An endpoint's URL: http(s), a path kept as a repository prefix, nothing else. */
const endpointUrl = v.pipe(str(), v.rawTransform(({ dataset, addIssue, NEVER }) => {
  let u: URL;
  try {
    u = new URL(dataset.value);
  } catch {
    addIssue({ message: `not a URL: ${JSON.stringify(dataset.value)}` });
    return NEVER;
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") addIssue({ message: "must be an http:// or https:// URL" });
  else if (u.search || u.hash || u.username) addIssue({ message: "may have a path but no query, fragment or credentials" });
  else return `${u.origin}${u.pathname.replace(/\/+$/, "")}`;
  return NEVER;
}));

export const endpointMapping = mapping({ url: endpointUrl, auth: v.optional(authChecked), tls: v.optional(tls) }, "must be a URL or a mapping with url (and auth, tls)");
/** A URL, or `{url, auth, tls}`; a URL's errors name `url` as well. */
export const urlOrMapping = v.union([v.string(), v.looseObject({})], "must be a URL or a mapping with url (and auth, tls)");
const endpoint = v.pipe(
  urlOrMapping,
  v.transform((e) => (typeof e === "string" ? { url: e } : e)),
  endpointMapping,
);

export const registry = v.pipe(mapping({
  name: doc(v.pipe(host(), v.transform(canonicalUpstream)),
    "upstream host or host:port the entry applies to, as in image references (`docker.io` also matches `index.docker.io`/`registry-1.docker.io`)"),
  scheme: doc(v.optional(oneOf(["http", "https"], "must be http or https"), "https"), "`http` or `https`"),
  auth: doc(v.optional(authChecked), "credentials for this upstream"),
  tls: doc(v.optional(tls), "TLS settings for this upstream"),
  tokenHosts: doc(v.optional(v.array(v.pipe(host(), v.transform((h) => h.toLowerCase())), "must be a list of hosts")),
    "token-server hosts, besides the upstream's own host and registrable domain, that may receive `auth` (e.g. `[sso.corp.example]`)"),
  endpoints: doc(v.optional(v.array(endpoint, "must be a list of URLs or {url, auth, tls}")),
    "mirrors tried in order before the origin: a URL (its path is a repository prefix) or `{url, auth, tls}` (see [upstreams.md](upstreams.md))"),
  originFallback: doc(v.optional(bool(), true), "`false`: never ask the origin, only the endpoints"),
  userAgent: doc(v.optional(v.pipe(str(), v.check((ua) => !/[\r\n\x00-\x1f\x7f]/.test(ua), "must not contain control characters"))),
    "the User-Agent sent to this upstream", { default: "`ociregistry/<version>`" }),
}, "must be a mapping with at least a name"), crossCheck((r) =>
  !r.originFallback && !r.endpoints?.length ? { key: "originFallback", problem: "false needs at least one endpoint" } : undefined));

export const registries = v.pipe(v.array(registry, "must be a list"), v.rawCheck(({ dataset, addIssue }) => {
  if (!dataset.typed) return;
  const seen = new Set<string>();
  dataset.value.forEach((r, i) => {
    if (seen.has(r.name)) {
      addIssue({ message: `${r.name} is listed twice`, path: [
        { type: "array", origin: "value", input: dataset.value, key: i, value: r },
        { type: "object", origin: "value", input: r, key: "name", value: r.name },
      ] });
    }
    seen.add(r.name);
  });
}));

export type RegistryFile = v.InferOutput<typeof registry>;
export type RegistryTls = v.InferOutput<typeof tls>;
