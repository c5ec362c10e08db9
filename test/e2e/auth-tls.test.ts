// Upstream credentials and TLS (basic, token, custom CA, mTLS, insecureSkipVerify), refusals
// reported clearly, and the cache itself served over TLS with client certificates and basic auth.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startCache, type RunningCache } from "../helpers/binary.ts";
import { skopeoCopy, startContainerd, type Containerd } from "../helpers/clients.ts";
import { startDistribution, type Distribution } from "../helpers/distribution.ts";
import { makeImage, pushImage, type Image } from "../helpers/images.ts";
import { makePki, type Pki } from "../helpers/pki.ts";
import { run } from "../helpers/procs.ts";
import { startTokenServer, type TokenServer } from "../helpers/token-server.ts";

const BASIC = "127.0.0.5";
const TOKEN = "127.0.0.6";
const MTLS = "127.0.0.7";
const SELF = "127.0.0.8";
/** Every option at once: custom CA, client certificate and basic auth. */
const ALL = "127.0.0.9";

let dir: string;
let pki: Pki;
let selfSigned: Pki;
let cachePki: Pki;
let tokens: TokenServer;
const upstreams: Distribution[] = [];
const caches: RunningCache[] = [];
let ctr: Containerd;
let good: RunningCache;
const img: Image = makeImage();

async function cacheWith(config: string, extra: string[] = [], env: Record<string, string> = {}) {
  const file = join(dir, `cache-${caches.length}.yml`);
  writeFileSync(file, config);
  const store = mkdtempSync(join(dir, "store-"));
  const c = await startCache(["--config-file", file, "--image-path", store, ...extra], env);
  caches.push(c);
  return c;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "ocireg-auth-"));
  pki = await makePki([MTLS, ALL]);
  selfSigned = await makePki([SELF]);
  cachePki = await makePki(["127.0.0.1"]);
  await run(["sh", "-c", `htpasswd -Bbn alice basic-secret > ${join(dir, "upstream.htpasswd")}`]);
  tokens = await startTokenServer({ dir, host: TOKEN, user: "bob", password: "token-secret" });

  const basic = await startDistribution({
    addr: `${BASIC}:80`, extraYaml: `auth:\n  htpasswd:\n    realm: basic-realm\n    path: ${join(dir, "upstream.htpasswd")}\n`,
  });
  const token = await startDistribution({
    addr: `${TOKEN}:80`,
    extraYaml: `auth:\n  token:\n    realm: ${tokens.realm}\n    service: ${tokens.service}\n    issuer: ${tokens.issuer}\n    rootcertbundle: ${tokens.certPath}\n`,
  });
  const mtls = await startDistribution({ addr: `${MTLS}:443`, tls: { cert: pki.serverCert, key: pki.serverKey, clientCas: [pki.ca] } });
  const self = await startDistribution({ addr: `${SELF}:443`, tls: { cert: selfSigned.serverCert, key: selfSigned.serverKey } });
  const all = await startDistribution({
    addr: `${ALL}:443`, tls: { cert: pki.serverCert, key: pki.serverKey, clientCas: [pki.ca] },
    extraYaml: `auth:\n  htpasswd:\n    realm: basic-realm\n    path: ${join(dir, "upstream.htpasswd")}\n`,
  });
  upstreams.push(basic, token, mtls, self, all);

  await pushImage({ base: basic.base, credentials: { user: "alice", password: "basic-secret" } }, "team/app", "v1", img);
  await pushImage({ base: token.base, credentials: { user: "bob", password: "token-secret" } }, "team/app", "v1", img);
  const pem = (p: string) => readFileSync(p, "utf8");
  await pushImage({ base: mtls.base, tls: { ca: pem(pki.ca), cert: pem(pki.clientCert), key: pem(pki.clientKey) } }, "team/app", "v1", img);
  await pushImage({ base: self.base, tls: { rejectUnauthorized: false } }, "team/app", "v1", img);
  await pushImage({
    base: all.base, tls: { ca: pem(pki.ca), cert: pem(pki.clientCert), key: pem(pki.clientKey) },
    credentials: { user: "alice", password: "basic-secret" },
  }, "team/app", "v1", img);

  good = await cacheWith(`registries:
  - name: ${BASIC}
    scheme: http
    auth: { user: alice, passwordFromEnv: BASIC_PASSWORD }
  - name: ${TOKEN}
    scheme: http
    auth: { user: bob, password: token-secret }
  - name: ${MTLS}
    tls: { ca: ${pki.ca}, cert: ${pki.clientCert}, key: ${pki.clientKey} }
  - name: ${SELF}
    tls: { insecureSkipVerify: true }
  - name: ${ALL}
    auth: { user: alice, passwordFromEnv: BASIC_PASSWORD }
    tls: { ca: ${pki.ca}, cert: ${pki.clientCert}, key: ${pki.clientKey} }
`, [], { BASIC_PASSWORD: "basic-secret" });
  ctr = await startContainerd();
}, 120_000);

afterAll(async () => {
  await ctr?.stop();
  for (const c of caches) await c.stop();
  for (const u of upstreams) await u.stop();
  tokens?.stop();
  rmSync(dir, { recursive: true, force: true });
}, 120_000);

describe("upstream credentials and TLS", () => {
  test.each([
    ["basic auth", BASIC],
    ["bearer token auth through a token server", TOKEN],
    ["mutual TLS with a client certificate", MTLS],
    ["insecureSkipVerify against a self-signed upstream", SELF],
    ["basic auth over mutual TLS with a custom CA", ALL],
  ])("skopeo pulls through %s", async (_, host) => {
    const r = await skopeoCopy(`127.0.0.1:${good.port}/${host}/team/app:v1`);
    expect(r.digest).toBe(img.digest);
    r.cleanup();
  });

  test.each([["basic", BASIC], ["token", TOKEN], ["basic-over-mTLS", ALL]])("ctr pulls through %s auth (?ns=)", async (_, host) => {
    expect(await ctr.pull(`${host}/team/app:v1`, host, good.url)).toBe(img.digest);
  });

  test("the token server is asked once for pull scope with the configured user, and the token is reused", async () => {
    // A cache of its own, so no other test's requests count.
    const fresh = await cacheWith(`registries:\n  - name: ${TOKEN}\n    scheme: http\n    auth: { user: bob, password: token-secret }\n`);
    const before = tokens.requests.length;
    for (let i = 0; i < 2; i++) (await skopeoCopy(`127.0.0.1:${fresh.port}/${TOKEN}/team/app:v1`)).cleanup();
    expect(await ctr.pull(`${TOKEN}/team/app:v1`, TOKEN, fresh.url)).toBe(img.digest);
    expect(tokens.requests.slice(before)).toEqual(["bob repository:team/app:pull"]);
  });

  test("secrets appear in no log line", () => {
    for (const c of caches) {
      expect(c.output()).not.toContain("basic-secret");
      expect(c.output()).not.toContain("token-secret");
    }
  });
});

describe("refusals are clear", () => {
  let bad: RunningCache;
  beforeAll(async () => {
    bad = await cacheWith(`registries:
  - name: ${BASIC}
    scheme: http
    auth: { user: alice, password: wrong }
  - name: ${TOKEN}
    scheme: http
    auth: { user: bob, password: wrong }
  - name: ${MTLS}
    tls: { ca: ${pki.ca} }
`);
  }, 120_000);

  async function refusal(host: string) {
    const res = await fetch(`${bad.url}/v2/${host}/team/app/manifests/v1`);
    const body = (await res.json()) as { errors: Array<{ code: string; message: string }> };
    return { status: res.status, ...body.errors[0]! };
  }

  test("a wrong password for a basic-auth upstream is a 401 naming the upstream", async () => {
    const e = await refusal(BASIC);
    expect(e.status).toBe(401);
    expect(e.code).toBe("UNAUTHORIZED");
    expect(e.message).toContain(`upstream ${BASIC}`);
    expect(e.message).toContain("refused the configured credentials");
  });

  test("a wrong password at the token server is a 401 naming the upstream", async () => {
    const e = await refusal(TOKEN);
    expect(e.status).toBe(401);
    expect(e.message).toContain(`upstream ${TOKEN}`);
    expect(e.message).toContain("refused the configured credentials");
  });

  test("a missing client certificate is refused with a clear error", async () => {
    const e = await refusal(MTLS);
    expect(e.status).toBe(502);
    expect(e.message).toContain(`upstream ${MTLS}`);
    expect(e.message).toContain("TLS handshake");
    expect(e.message).toContain("client certificate");
  });

  test("an untrusted upstream certificate is a 502 naming the upstream and the reason", async () => {
    const res = await fetch(`${bad.url}/v2/${SELF}/team/app/manifests/v1`);
    expect(res.status).toBe(502);
    const message = ((await res.json()) as { errors: Array<{ message: string }> }).errors[0]!.message;
    expect(message).toContain(SELF);
    expect(message).toMatch(/certificate/i);
  });

  test("each refusal is logged once, without the secret", async () => {
    await refusal(BASIC);
    await refusal(BASIC);
    const lines = bad.output().split("\n").filter((l) => l.includes(`upstream ${BASIC} refused us`));
    expect(lines).toHaveLength(1);
    expect(bad.output()).not.toContain("wrong");
  });
});

describe("serving over TLS and with basic auth", () => {
  test("clientAuth verify: skopeo with a client certificate pulls, without one it is refused", async () => {
    const c = await cacheWith(`serverTlsConfig:
  cert: ${cachePki.serverCert}
  key: ${cachePki.serverKey}
  ca: ${cachePki.ca}
  clientAuth: verify
registries:
  - name: ${SELF}
    tls: { insecureSkipVerify: true }
`);
    const certDir = mkdtempSync(join(dir, "certs-"));
    writeFileSync(join(certDir, "ca.crt"), readFileSync(cachePki.ca));
    writeFileSync(join(certDir, "client.cert"), readFileSync(cachePki.clientCert));
    writeFileSync(join(certDir, "client.key"), readFileSync(cachePki.clientKey));
    const ref = `127.0.0.1:${c.port}/${SELF}/team/app:v1`;
    const ok = await skopeoCopy(ref, { tlsVerify: true, extra: ["--src-cert-dir", certDir] });
    expect(ok.digest).toBe(img.digest);
    ok.cleanup();
    const caOnly = mkdtempSync(join(dir, "certs-"));
    writeFileSync(join(caOnly, "ca.crt"), readFileSync(cachePki.ca));
    await expect(skopeoCopy(ref, { tlsVerify: true, extra: ["--src-cert-dir", caOnly] })).rejects.toThrow();
  });

  test("downstream basic auth: /v2/ challenges, skopeo --src-creds pulls, wrong credentials fail", async () => {
    const htpasswd = join(dir, "clients.htpasswd");
    await run(["sh", "-c", `htpasswd -Bbn carol pull-secret > ${htpasswd}`]);
    const c = await cacheWith(`htpasswd: ${htpasswd}
registries:
  - name: ${SELF}
    tls: { insecureSkipVerify: true }
`);
    const res = await fetch(`${c.url}/v2/`);
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toBe('Basic realm="ociregistry"');
    const ref = `127.0.0.1:${c.port}/${SELF}/team/app:v1`;
    const ok = await skopeoCopy(ref, { extra: ["--src-creds", "carol:pull-secret"] });
    expect(ok.digest).toBe(img.digest);
    ok.cleanup();
    await expect(skopeoCopy(ref, { extra: ["--src-creds", "carol:nope"] })).rejects.toThrow();
    await expect(skopeoCopy(ref)).rejects.toThrow();
  });
});
