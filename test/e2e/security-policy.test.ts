// The default upstream policy (issue 18 items 5-7) against the compiled binary: client-named
// internal upstreams, realms and redirects refused in every spelling, listed ones working,
// `upstreams: any` as a warned opt-in, and the message when credentials were withheld from a realm.
// Servers on 127.0.10.1-8, caches on 127.0.0.1.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TCPSocketListener } from "bun";
import { BINARY, startCache, type RunningCache } from "../helpers/binary.ts";
import {
  bearer, honest, json, peakRss, redirect, startHostile, startWitness, type Behaviour, type HostileUpstream, type Witness,
} from "../helpers/hostile-upstream.ts";
import { makePki, type Pki } from "../helpers/pki.ts";
import { run } from "../helpers/procs.ts";
import { errorMessage, get, type Got } from "../helpers/security.ts";
import { digestOf } from "../../src/oci/digest.ts";

/** Listed, plain HTTP: realms and redirects to the witnesses. */
const LISTED = "127.0.10.1";
/** Unlisted witnesses a realm or a redirect points at. */
const REALM_WITNESS = "127.0.10.2";
const REDIRECT_WITNESS = "127.0.10.3";
/** Unlisted: counts every TCP connection on :443 and :80. */
const TARGET = "127.0.10.5";
/** Unlisted, HTTPS on :443 with a CA the caches trust: reachable once policy allows it. */
const TLS_TARGET = "127.0.10.6";
/** Listed with credentials; its token realm is on REALM, another address. */
const AUTHED = "127.0.10.7";
const REALM = "127.0.10.8";
const MiB = 1024 * 1024;
const USER = "puller";
const PASSWORD = "s3cret";

let dir: string;
let pki: Pki;
let listed: HostileUpstream;
let tlsTarget: HostileUpstream;
let authed: HostileUpstream;
let realm: HostileUpstream;
let realmWitness: Witness;
let redirectWitness: Witness;
const counters: TCPSocketListener<undefined>[] = [];
let targetConnections = 0;
const caches: RunningCache[] = [];
let strict: RunningCache;
let env: Record<string, string>;

/** Starts a cache with `yaml` and the real default policy unless the YAML sets one. */
async function cache(name: string, yaml: string): Promise<RunningCache> {
  const config = join(dir, `${name}.yml`);
  writeFileSync(config, yaml);
  const c = await startCache(["--config-file", config, "--image-path", join(dir, `store-${name}`)], env, { defaultPolicy: true });
  caches.push(c);
  return c;
}

const entry = (name: string, rest = "") => `  - { name: ${name}, scheme: http${rest} }\n`;
const auth = `, auth: { user: ${USER}, password: ${PASSWORD} }`;

/** A 502 naming the upstream and saying why, with nothing fetched. */
function refusedByPolicy(got: Got, ...words: string[]) {
  const msg = errorMessage(got);
  expect({ status: got.status, says: words.filter((w) => !msg.includes(w)) }).toEqual({ status: 502, says: [] });
}

/** The upstream refuses every token but one got with the configured credentials. */
const wantsCredentials: Behaviour = (x) => {
  if (x.kind === "ping") return json(x.res, 200, {});
  if (x.req.headers.authorization === "Bearer with-credentials") return honest(x);
  json(x.res, 401, { errors: [{ code: "UNAUTHORIZED", message: "authentication required" }] }, {
    "WWW-Authenticate": `Bearer realm="http://${REALM}/token",service="authed",scope="repository:${x.repo}:pull"`,
  });
};

/** A token service that hands an anonymous token to anyone and a good one for the credentials. */
const tokenService: Behaviour = (x) => {
  if (x.kind !== "token") return honest(x);
  const basic = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString("base64")}`;
  json(x.res, 200, { token: x.req.headers.authorization === basic ? "with-credentials" : "anonymous", expires_in: 300 });
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "ocireg-sec-policy-"));
  pki = await makePki([TLS_TARGET]);
  // Client-named upstreams are HTTPS; the caches trust this CA so that only the policy stands in the way.
  env = { NODE_EXTRA_CA_CERTS: pki.ca };
  listed = await startHostile({ host: LISTED });
  tlsTarget = await startHostile({ host: TLS_TARGET, tls: { cert: pki.serverCert, key: pki.serverKey } });
  authed = await startHostile({ host: AUTHED });
  realm = await startHostile({ host: REALM });
  authed.behave("fixture", wantsCredentials);
  realm.behave("fixture", tokenService);
  realmWitness = await startWitness({ host: REALM_WITNESS, body: '{"token":"internal-secret"}', contentType: "application/json" });
  redirectWitness = await startWitness({ host: REDIRECT_WITNESS });
  for (const port of [80, 443]) {
    counters.push(Bun.listen({ hostname: TARGET, port, socket: { open: () => void targetConnections++, data: () => {} } }));
  }
  listed.behave("realm-plain", bearer({ realm: `http://${REALM_WITNESS}/token` }));
  listed.behave("realm-decimal", bearer({ realm: "http://2130708994/token" }));
  listed.behave("realm-mapped", bearer({ realm: "http://[::ffff:127.0.10.2]/token" }));
  listed.behave("redirect-plain", redirect(() => `http://${REDIRECT_WITNESS}/blob`));
  listed.behave("redirect-hex", redirect(() => "http://0x7f000a03/blob"));
  listed.behave("redirect-mapped", redirect(() => "http://[::ffff:7f00:a03]/blob"));
  listed.behave("redirect-short", redirect(() => "http://127.2563/blob"));
  strict = await cache("strict", `registries:\n${entry(LISTED)}${entry(AUTHED, auth)}${entry(REALM)}`);
}, 60_000);

afterAll(async () => {
  for (const c of caches) await c.stop();
  for (const s of [listed, tlsTarget, authed, realm, realmWitness, redirectWitness]) await s?.stop();
  for (const c of counters) c.stop(true);
});

describe("upstreams: public (the default)", () => {
  test("the banner says the policy and carries no warning", () => {
    expect(strict.output()).toContain("upstreams: public (");
    expect(strict.output()).not.toContain("WARNING");
  });

  test.each([
    ["127.0.10.5"], ["2130708997"], ["0x7f000a05"], ["127.2565"], ["0177.0.10.5"], ["[::ffff:127.0.10.5]"], ["[::ffff:7f00:a05]"],
    ["2130708997:443"], ["127.0.10.5:80"],
  ])("a client naming %s with ?ns= is refused; the host sees no connection", async (ns) => {
    const got = await get(`${strict.url}/v2/fixture/manifests/v1?ns=${encodeURIComponent(ns)}`);
    refusedByPolicy(got, "127.0.10.5", "an internal address", "list it under registries", "upstreams: any");
    expect(targetConnections).toBe(0);
  });

  test.each([["127.0.10.5"], ["127.2565"], ["0177.0.10.5"], ["2130708997:443"], ["0x7f000a05:443"], ["[::ffff:127.0.10.5]"], ["localhost:443"]])(
    "a client naming %s in the path is refused; the host sees no connection", async (host) => {
      const got = await get(`${strict.url}/v2/${host}/fixture/manifests/v1`);
      refusedByPolicy(got, "an internal address", "list it under registries");
      expect(targetConnections).toBe(0);
    });

  test("an internal host that would answer is refused too, blobs and tag lists alike", async () => {
    refusedByPolicy(await get(`${strict.url}/v2/fixture/manifests/v1?ns=${TLS_TARGET}`), TLS_TARGET, "an internal address");
    refusedByPolicy(await get(`${strict.url}/v2/${TLS_TARGET}/fixture/blobs/${tlsTarget.fixture.blobs[0]!.digest}`), TLS_TARGET);
    refusedByPolicy(await get(`${strict.url}/v2/${TLS_TARGET}/fixture/tags/list`), TLS_TARGET);
    expect(tlsTarget.requests.length).toBe(0);
  });

  test("a listed upstream works", async () => {
    for (const url of [`${strict.url}/v2/${LISTED}/fixture/manifests/v1`, `${strict.url}/v2/fixture/manifests/v1?ns=${LISTED}`]) {
      const got = await get(url);
      expect({ status: got.status, digest: got.body && digestOf(got.body) }).toEqual({ status: 200, digest: listed.fixture.digest });
    }
  });

  test.each([["realm-plain"], ["realm-decimal"], ["realm-mapped"]])("a listed upstream's %s realm on an unlisted internal address is never asked", async (repo) => {
    const got = await get(`${strict.url}/v2/${LISTED}/${repo}/app/manifests/v1`);
    refusedByPolicy(got, LISTED, "token realm points to", "127.0.10.2", "an internal address", "tokenHosts");
    expect(realmWitness.requests.length).toBe(0);
  });

  test.each([["redirect-plain"], ["redirect-hex"], ["redirect-mapped"], ["redirect-short"]])("a listed upstream's %s to an unlisted internal address is not followed", async (repo) => {
    const got = await get(`${strict.url}/v2/${LISTED}/${repo}/app/blobs/sha256:${"a".repeat(64)}`);
    refusedByPolicy(got, LISTED, "redirected to", "127.0.10.3", "an internal address");
    expect(redirectWitness.requests.length).toBe(0);
  });

  test("load: hosts of the operator's own image list count as listed", async () => {
    const list = join(dir, "images.txt");
    writeFileSync(list, `${TLS_TARGET}/fixture:v1\n`);
    const r = await run([BINARY, "--image-path", join(dir, "store-load"), "load", "--image-file", list], { env, allowFail: true });
    expect({ code: r.code, out: r.stderr.includes(tlsTarget.fixture.digest) || r.stdout.includes(tlsTarget.fixture.digest) }).toEqual({ code: 0, out: true });
    expect(tlsTarget.requests.some((q) => q.path === "/v2/fixture/manifests/v1")).toBe(true);
  });

  test("the process stayed under 150 MB", () => {
    expect(peakRss(strict.proc.pid)!).toBeLessThan(150 * MiB);
  });
});

describe("credentials withheld from a realm on another domain (item 7)", () => {
  test("the error names the realm host, says the credentials were withheld, and points to tokenHosts", async () => {
    const got = await get(`${strict.url}/v2/${AUTHED}/fixture/manifests/v1`);
    const msg = errorMessage(got);
    expect(got.status).toBe(401);
    for (const w of [AUTHED, `anonymous token from ${REALM}`, "withheld", "registries[].tokenHosts"]) expect(msg).toContain(w);
    const asked = realm.requests.filter((q) => q.path.startsWith("/token"));
    expect(asked.length).toBeGreaterThan(0);
    expect(asked.every((q) => !q.headers.authorization)).toBe(true);
    expect(await strict.settledOutput()).toContain("withheld");
  });

  test("with the realm under tokenHosts the credentials go there and the pull works", async () => {
    realm.requests.length = 0;
    const c = await cache("token-hosts", `registries:\n${entry(AUTHED, `${auth}, tokenHosts: ["${REALM}"]`)}`);
    const got = await get(`${c.url}/v2/${AUTHED}/fixture/manifests/v1`);
    expect({ status: got.status, digest: got.body && digestOf(got.body) }).toEqual({ status: 200, digest: authed.fixture.digest });
    expect(realm.requests.some((q) => q.path.startsWith("/token") && q.headers.authorization?.startsWith("Basic "))).toBe(true);
    expect(peakRss(c.proc.pid)!).toBeLessThan(150 * MiB);
  });
});

describe("upstreams: any (an explicit opt-in)", () => {
  test("reaches a client-named loopback upstream, and the banner warns", async () => {
    const c = await cache("any", `upstreams: any\nregistries:\n${entry(LISTED)}`);
    expect(c.output()).toMatch(/upstreams: ANY host a client names/);
    expect(c.output()).toMatch(/WARNING: upstreams: any lets every client make this cache contact any host, internal services included/);
    const got = await get(`${c.url}/v2/fixture/manifests/v1?ns=${TLS_TARGET}`);
    expect({ status: got.status, digest: got.body && digestOf(got.body) }).toEqual({ status: 200, digest: tlsTarget.fixture.digest });
    expect(peakRss(c.proc.pid)!).toBeLessThan(150 * MiB);
  });

  test("the --upstreams flag overrides the file, and a bad value names the flag and the values", async () => {
    const config = join(dir, "any-overridden.yml");
    writeFileSync(config, "upstreams: any\n");
    const c = await startCache(["--config-file", config, "--image-path", join(dir, "store-overridden"), "--upstreams", "public"], env);
    caches.push(c);
    refusedByPolicy(await get(`${c.url}/v2/fixture/manifests/v1?ns=${TARGET}`), TARGET, "an internal address");
    expect(c.output()).not.toContain("WARNING");
    const bad = await run([BINARY, "--image-path", join(dir, "store-bad"), "serve", "--port", "0", "--upstreams", "everything"], { allowFail: true });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr + bad.stdout).toContain('--upstreams: must be public, listed or any, got "everything"');
  });
});
