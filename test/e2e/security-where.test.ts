// Where the cache goes when an upstream is hostile (issue 9, D21): redirects to other schemes and
// hosts, token realms, content keyed by upstream, tarpits, endless bodies, token memory, and a
// Range on a download that turns out to lie. Servers on 127.0.0.21-26 (one witness on 127.0.0.1
// for `localhost`), the cache on 127.0.0.1.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RunningCache } from "../helpers/binary.ts";
import { skopeoCopy } from "../helpers/clients.ts";
import { startDistribution, type Distribution } from "../helpers/distribution.ts";
import {
  basic, bearer, manifest, redirect, startHostile, startWitness, watchMemory, type HostileUpstream, type Witness,
} from "../helpers/hostile-upstream.ts";
import { allBlobs, makeImage, pushImage, type Image } from "../helpers/images.ts";
import { makePki, type Pki } from "../helpers/pki.ts";
import { run, waitFor } from "../helpers/procs.ts";
import { rawOpen, type RawConnection } from "../helpers/raw-http.ts";
import { cacheFactory, errorMessage, get, storedFiles, type Got } from "../helpers/security.ts";
import { digestOf } from "../../src/oci/digest.ts";
import { OCI_MANIFEST } from "../../src/oci/mediatypes.ts";

const HOSTILE = "127.0.0.21";
/** The hostile upstream over TLS on :443, with a witness on its plain :80. */
const HTTPS = "127.0.0.22";
const WITNESS = "127.0.0.23";
const ELSEWHERE = "127.0.0.24";
const TOKENS = "127.0.0.25";
const REAL = "127.0.0.26";
const MiB = 1024 * 1024;
const ZERO = `sha256:${"0".repeat(64)}`;

let dir: string;
let pki: Pki;
let hostile: HostileUpstream;
let tlsHostile: HostileUpstream;
let tokenServer: HostileUpstream;
let real: Distribution;
const witnesses: Record<string, Witness> = {};
let caches: ReturnType<typeof cacheFactory>;
/** Blob bytes by digest, served by every witness. */
const known = new Map<string, Uint8Array>();
const [x, y, flood] = [makeImage({ content: 2000 }), makeImage({ content: 2000 }), makeImage()];

const entry = (name: string, rest = "scheme: http") => `  - { name: ${name}, ${rest} }\n`;
const base = `registries:\n${entry(HOSTILE)}${entry(REAL)}`;
const tlsOnly = () => `registries:\n${entry(HTTPS, `scheme: https, tls: { ca: ${pki.ca} }`)}`;
const layerOf = (img: Image) => img.blobs[1]!;
const at = (c: RunningCache, host: string, path: string) => `${c.url}/v2/${host}/${path}`;

/** A 502 whose message names the upstream. */
const refused = (got: Got, host = HOSTILE) =>
  expect({ status: got.status, namesUpstream: errorMessage(got).includes(host) }).toEqual({ status: 502, namesUpstream: true });
/** A 200 with the bytes of `digest`. */
const served = (got: Got, digest: string) =>
  expect({ status: got.status, digest: got.body && digestOf(got.body) }).toEqual({ status: 200, digest });

/** An image served by `on` as `repo:v1`, its blobs known to the witnesses. */
function serve(on: HostileUpstream, repo: string, img = makeImage()): Image {
  on.add(repo, "v1", img);
  for (const b of allBlobs(img)) known.set(b.digest, b.bytes);
  return img;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "ocireg-sec-where-"));
  caches = cacheFactory(dir);
  pki = await makePki([HTTPS]);
  hostile = await startHostile({ host: HOSTILE });
  tlsHostile = await startHostile({ host: HTTPS, tls: { cert: pki.serverCert, key: pki.serverKey } });
  tokenServer = await startHostile({ host: TOKENS });
  const body = (path: string) => known.get(path.match(/sha256:[a-f0-9]{64}/)?.[0] ?? "");
  witnesses.plainRealm = await startWitness({ host: HTTPS, body: '{"token":"from-a-plain-http-realm"}', contentType: "application/json" });
  witnesses.downgrade = await startWitness({ host: WITNESS, body });
  witnesses.elsewhere = await startWitness({ host: ELSEWHERE, body });
  witnesses.localhost = await startWitness({ host: "127.0.0.1", port: 0, body });
  real = await startDistribution({ addr: `${REAL}:80` });
  for (const [repo, img] of [["library/x", x], ["library/y", y], ["library/flood", flood]] as const) await pushImage({ base: real.base }, repo, "v1", img);
}, 120_000);

afterAll(async () => {
  // Nothing here needs a graceful stop, and requests hung on tarpits would hold one for 10 s.
  await caches?.stopAll("SIGKILL");
  for (const s of [hostile, tlsHostile, tokenServer, ...Object.values(witnesses)]) await s?.stop();
  await real?.stop();
  rmSync(dir, { recursive: true, force: true });
}, 120_000);

describe("redirects", () => {
  beforeAll(() => {
    const local = join(dir, "local");
    mkdirSync(local);
    hostile.behave("redirect-local", redirect((r) => `file://${join(local, r.ref)}`));
    tlsHostile.behave("downgrade", redirect((r) => `http://${WITNESS}${r.url.pathname}`));
    hostile.behave("basic-redirect", basic("alice", "s3cret", redirect((r) => `http://${ELSEWHERE}${r.url.pathname}`)));
    hostile.behave("to-elsewhere", redirect((r) => `http://${ELSEWHERE}${r.url.pathname}`));
    hostile.behave("to-localhost", redirect((r) => `http://localhost:${witnesses.localhost!.port}${r.url.pathname}`));
  });

  test.each([
    ["manifest", "redirect-file", "file:///etc/passwd"],
    ["blob", "redirect-file", "file:///etc/passwd"],
    ["manifest", "redirect-data", "a data: URL of the right bytes"],
    ["blob", "redirect-data", "a data: URL of the right bytes"],
    ["manifest", "redirect-local", "a local file holding the right bytes"],
    ["blob", "redirect-local", "a local file holding the right bytes"],
  ])("a %s redirected by %s to %s is a 502 naming the upstream, nothing stored", async (what, repo) => {
    const img = serve(hostile, `${repo}/${what}`);
    writeFileSync(join(dir, "local", "v1"), img.manifest);
    for (const b of allBlobs(img)) writeFileSync(join(dir, "local", b.digest), b.bytes);
    const { cache, store } = await caches.start(base);
    refused(await get(at(cache, HOSTILE, `${repo}/${what}/${what === "blob" ? `blobs/${layerOf(img).digest}` : "manifests/v1"}`)));
    expect(storedFiles(store)).toEqual([]);
  });

  test("an endless redirect loop is a 502 after at most 10 upstream requests", async () => {
    const { cache } = await caches.start(base);
    refused(await get(at(cache, HOSTILE, "redirect-loop/app/manifests/v1")));
    expect(hostile.requestsFor("redirect-loop").length).toBeLessThanOrEqual(10);
  });

  test("an https upstream redirecting a blob to plain http is a 502; the http host sees nothing", async () => {
    const img = serve(tlsHostile, "downgrade/app");
    const { cache, store } = await caches.start(tlsOnly());
    refused(await get(at(cache, HTTPS, `downgrade/app/blobs/${layerOf(img).digest}`)), HTTPS);
    expect(witnesses.downgrade!.requests).toEqual([]);
    expect(storedFiles(store)).toEqual([]);
  });

  test("credentials go to the upstream, never to the host a blob is redirected to", async () => {
    const img = serve(hostile, "basic-redirect/app");
    const { cache } = await caches.start(`registries:\n${entry(HOSTILE, "scheme: http, auth: { user: alice, password: s3cret }")}`);
    const before = witnesses.elsewhere!.requests.length;
    served(await get(at(cache, HOSTILE, `basic-redirect/app/blobs/${layerOf(img).digest}`)), layerOf(img).digest);
    expect(hostile.requestsFor("basic-redirect").some((r) => r.headers.authorization?.startsWith("Basic "))).toBe(true);
    const seen = witnesses.elsewhere!.requests.slice(before);
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.map((r) => r.headers.authorization ?? "none")).toEqual(seen.map(() => "none"));
  });

  test.each([["to-elsewhere", "elsewhere"], ["to-localhost", "localhost"]])("upstreams: listed: a redirect %s (not listed) is a 502 naming the upstream; the target sees nothing", async (repo, w) => {
    const img = serve(hostile, `${repo}/app`);
    const { cache, store } = await caches.start(`upstreams: listed\nregistries:\n${entry(HOSTILE)}`);
    const before = witnesses[w]!.requests.length;
    refused(await get(at(cache, HOSTILE, `${repo}/app/blobs/${layerOf(img).digest}`)));
    expect(witnesses[w]!.requests.length).toBe(before);
    expect(storedFiles(store)).toEqual([]);
  });

  test("upstreams: listed: a redirect to a listed host is followed", async () => {
    const img = serve(hostile, "to-elsewhere/listed");
    const { cache } = await caches.start(`upstreams: listed\nregistries:\n${entry(HOSTILE)}${entry(ELSEWHERE)}`);
    served(await get(at(cache, HOSTILE, `to-elsewhere/listed/blobs/${layerOf(img).digest}`)), layerOf(img).digest);
  });
});

describe("token realms", () => {
  test.each([
    ["realm-file", "file:///etc/passwd"],
    ["realm-local", "a local file holding a token"],
  ])("a %s challenge (%s) is a 502, nothing read is used, nothing stored", async (repo) => {
    writeFileSync(join(dir, "token.json"), '{"token":"stolen-from-a-local-file"}');
    hostile.behave("realm-local", bearer({ realm: `file://${join(dir, "token.json")}` }));
    serve(hostile, `${repo}/app`);
    const { cache, store } = await caches.start(base);
    refused(await get(at(cache, HOSTILE, `${repo}/app/manifests/v1`)));
    expect(hostile.requests.filter((r) => r.headers.authorization?.includes("stolen"))).toEqual([]);
    expect(storedFiles(store)).toEqual([]);
  });

  test("an https upstream's plain-http realm is a 502 and the realm is never asked", async () => {
    tlsHostile.behave("realm-plain", bearer({ realm: `http://${HTTPS}/token` }));
    serve(tlsHostile, "realm-plain/app");
    const { cache } = await caches.start(tlsOnly());
    refused(await get(at(cache, HTTPS, "realm-plain/app/manifests/v1")), HTTPS);
    expect(witnesses.plainRealm!.requests).toEqual([]);
  });

  test.each([
    ["without tokenHosts the token server on another host gets no credentials", "without", ""],
    ["with tokenHosts listing it the token server gets the basic credentials", "with", `, tokenHosts: ["${TOKENS}"]`],
  ])("%s; the pull works", async (_, repo, tokenHosts) => {
    hostile.behave("realm-elsewhere", bearer({ realm: `http://${TOKENS}/token` }));
    const img = serve(hostile, `realm-elsewhere/${repo}`);
    const { cache } = await caches.start(`registries:\n${entry(HOSTILE, `scheme: http, auth: { user: alice, password: s3cret }${tokenHosts}`)}`);
    const before = tokenServer.requests.length;
    const pulled = await skopeoCopy(`127.0.0.1:${cache.port}/${HOSTILE}/realm-elsewhere/${repo}:v1`);
    pulled.cleanup();
    expect(pulled.digest).toBe(img.digest);
    const asked = tokenServer.requests.slice(before).map((r) => r.headers.authorization ?? "none");
    expect(asked.length).toBeGreaterThan(0);
    const expected = tokenHosts ? `Basic ${Buffer.from("alice:s3cret").toString("base64")}` : "none";
    expect(asked).toEqual(asked.map(() => expected));
  });

  test("a broken challenge on one repository does not break another on the same upstream", async () => {
    const img = serve(hostile, "challenge-good/app");
    serve(hostile, "challenge-broken/app");
    const { cache } = await caches.start(base);
    expect((await get(at(cache, HOSTILE, "challenge-broken/app/manifests/v1"))).status).toBeGreaterThanOrEqual(400);
    served(await get(at(cache, HOSTILE, "challenge-good/app/manifests/v1")), img.digest);
  });

  test("a challenge without a realm is a 502 naming the upstream", async () => {
    const { cache } = await caches.start(base);
    refused(await get(at(cache, HOSTILE, "challenge-invalid/app/manifests/v1")));
  });
});

describe("content is keyed by upstream", () => {
  test("a stalled lying download of digest L on one upstream does not hold L from another", async () => {
    serve(hostile, "lying-drip/app", x);
    const { cache } = await caches.start(base, ["--pull-timeout", "2000"]);
    const path = `lying-drip/app/blobs/${layerOf(x).digest}`;
    const a = new AbortController();
    const slow = fetch(at(cache, HOSTILE, path), { signal: a.signal }).then((r) => r.arrayBuffer()).catch(() => null);
    await waitFor("the lying download to start", async () => (hostile.sent.get(`/v2/${path}`) ?? 0) > 0);
    served(await get(at(cache, REAL, `library/x/blobs/${layerOf(x).digest}`), {}, 5000), layerOf(x).digest);
    expect(hostile.sent.get(`/v2/${path}`)).toBeLessThan(layerOf(x).bytes.byteLength);
    a.abort();
    await slow;
  });

  test("a size one upstream's manifest declares for L does not hold L from another", async () => {
    const lie = JSON.parse(new TextDecoder().decode(y.manifest));
    lie.layers[0].size = 1;
    hostile.behave("wrong-size", manifest(new TextEncoder().encode(JSON.stringify(lie)), OCI_MANIFEST));
    const { cache } = await caches.start(base);
    expect((await get(at(cache, HOSTILE, "wrong-size/app/manifests/v1"))).status).toBe(200);
    served(await get(at(cache, REAL, `library/y/blobs/${layerOf(y).digest}`)), layerOf(y).digest);
  });
});

describe("tarpits (--pull-timeout 2000)", () => {
  const cases = ["silent", "drip"].flatMap((mode) => [
    [`manifests, ${mode}`, `tarpit-${mode}/m/manifests/v1`, true],
    [`tags/list, ${mode}`, `tarpit-${mode}/t/tags/list`, false],
    [`referrers, ${mode}`, `tarpit-${mode}/r/referrers/${ZERO}`, false],
    [`token endpoint, ${mode}`, `tarpit-token-${mode}/m/manifests/v1`, true],
  ] as Array<[string, string, boolean]>);
  const results = new Map<string, Got>();
  beforeAll(async () => {
    const { cache } = await caches.start(base, ["--pull-timeout", "2000"]);
    // All at once, so the circuit breaker admits every one of them.
    await Promise.all(cases.map(async ([name, path]) => results.set(name, await get(at(cache, HOSTILE, path), {}, 10_000))));
  }, 30_000);

  test.each(cases)("%s: answered within 10 s", (name, _, mustFail) => {
    const got = results.get(name)!;
    expect({ error: got.error, inTime: got.ms < 10_000 }).toEqual({ error: undefined, inTime: true });
    if (mustFail) expect([502, 504]).toContain(got.status);
  });

  test("400 requests hung on tarpits do not stop a skopeo pull from another upstream (15 s)", async () => {
    const { cache } = await caches.start(base, ["--pull-timeout", "2000"]);
    const kinds = ["manifests/v1", "tags/list", `referrers/${ZERO}`];
    // Raw sockets: the test's own fetch would queue past 256 requests.
    const conns: RawConnection[] = await Promise.all(Array.from({ length: 400 }, (_, i) =>
      rawOpen("127.0.0.1", cache.port, `GET /v2/${HOSTILE}/tarpit-drip/flood${i}/${kinds[i % 3]} HTTP/1.1\r\nHost: cache\r\n\r\n`)));
    try {
      await waitFor("the flood to reach the tarpit", async () => hostile.requestsFor("tarpit-drip/flood").length > 0);
      const out = join(dir, "flood-pull");
      const started = Date.now();
      const r = await run(["timeout", "15", "skopeo", "--insecure-policy", "copy", "--src-tls-verify=false", "--retry-times", "0",
        "--digestfile", `${out}.digest`, `docker://127.0.0.1:${cache.port}/${REAL}/library/flood:v1`, `dir:${out}`], { allowFail: true });
      expect(r.code === 0 ? "exit 0" : r.stderr).toBe("exit 0");
      expect(Date.now() - started).toBeLessThan(15_000);
      expect(readFileSync(`${out}.digest`, "utf8").trim()).toBe(flood.digest);
    } finally {
      for (const c of conns) c.close();
    }
  }, 60_000);
});

describe("memory under endless bodies and big tokens", () => {
  const LIMIT = 400 * MiB;
  test.each([
    ["an endless tags/list", `endless/t/tags/list`],
    ["an endless referrers index", `endless/r/referrers/${ZERO}`],
    ["an endless token response", `endless-token/m/manifests/v1`],
    ["an endless error body on a 404", `endless/m/manifests/v1`],
  ])("%s is answered within 10 s and peak RSS stays below 400 MiB", async (_, path) => {
    // The default pull timeout: a fast endless body must be bounded by size, not by time.
    const { cache } = await caches.start(base);
    const mem = watchMemory(cache.proc.pid, LIMIT);
    const got = await get(at(cache, HOSTILE, path), {}, 10_000);
    mem.stop();
    expect(mem.peak()).toBeLessThan(LIMIT);
    expect({ error: got.error, inTime: got.ms < 10_000 }).toEqual({ error: undefined, inTime: true });
  }, 30_000);

  test.each([
    ["1 MiB tokens for 300 repositories", "token-1m", 300, 8],
    ["32 KiB tokens for 3000 repositories", "token-32k", 3000, 32],
  ])("%s keep peak RSS below 400 MiB", async (_, repo, count, concurrency) => {
    const { cache } = await caches.start(base, ["--pull-timeout", "2000"]);
    const mem = watchMemory(cache.proc.pid, LIMIT);
    let next = 0;
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (next < count && cache.proc.exitCode === null && cache.proc.signalCode === null) {
        await get(at(cache, HOSTILE, `${repo}/r${next++}/manifests/v1`), {}, 10_000);
      }
    }));
    mem.stop();
    expect(mem.peak()).toBeLessThan(LIMIT);
    expect(next).toBe(count);
  }, 90_000);
});

describe("Range on a blob that is still downloading", () => {
  test.each([
    ["whose last byte is wrong: no complete 206 before the digest is verified", "lying-last-slow", false],
    ["that is honest: 206 with the right 100 bytes", "honest-slow", true],
  ])("a slow blob %s", async (_, repo, honest) => {
    const layer = layerOf(serve(hostile, `${repo}/app`, makeImage({ content: 200_000, uncompressed: true })));
    const { cache } = await caches.start(base, ["--pull-timeout", "2000"]);
    const path = `${repo}/app/blobs/${layer.digest}`;
    const whole = get(at(cache, HOSTILE, path), {}, 15_000);
    await waitFor("the download to start", async () => (hostile.sent.get(`/v2/${path}`) ?? 0) > 0);
    const ranged = await get(at(cache, HOSTILE, path), { headers: { Range: "bytes=0-99" } }, 15_000);
    if (honest) expect({ status: ranged.status, body: ranged.body }).toEqual({ status: 206, body: layer.bytes.subarray(0, 100) });
    else expect(ranged.status === 206 && ranged.body?.byteLength === 100).toBe(false);
    await whole;
  }, 30_000);
});
