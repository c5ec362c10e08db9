// What the cache serves when an upstream is hostile (issue 9, D21): manifest media types that a
// browser would render or that break headers, nosniff on every response, tags that cannot exist,
// upstream failures in the log, long downstream passwords, and paths that try to leave the API.
// The hostile upstream is on 127.0.0.31 (also the default namespace); the cache on 127.0.0.1.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RunningCache } from "../helpers/binary.ts";
import { manifest, manifestWithMediaType, startHostile, type HostileUpstream } from "../helpers/hostile-upstream.ts";
import { run, waitFor } from "../helpers/procs.ts";
import { rawRequest } from "../helpers/raw-http.ts";
import { cacheFactory, errorCode, errorMessage, get, storedFiles } from "../helpers/security.ts";
import { digestOf } from "../../src/oci/digest.ts";
import { OCI_MANIFEST } from "../../src/oci/mediatypes.ts";

const HOSTILE = "127.0.0.31";
let dir: string;
let hostile: HostileUpstream;
let caches: ReturnType<typeof cacheFactory>;
let cache: RunningCache;
let store: string;
const config = `defaultNs: ${HOSTILE}\nregistries:\n  - { name: ${HOSTILE}, scheme: http }\n`;
const url = (path: string) => `${cache.url}/v2/${HOSTILE}/${path}`;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "ocireg-sec-serves-"));
  caches = cacheFactory(dir);
  hostile = await startHostile({ host: HOSTILE });
  hostile.behave("bel-mediatype", manifest(manifestWithMediaType(hostile.fixture, `${OCI_MANIFEST}\u0007`), OCI_MANIFEST));
  ({ cache, store } = await caches.start(config));
}, 120_000);

afterAll(async () => {
  await caches?.stopAll();
  await hostile?.stop();
  rmSync(dir, { recursive: true, force: true });
}, 120_000);

describe("manifest media types", () => {
  test.each([
    ["text/html (Content-Type text/html too)", "html-manifest"],
    ["CR LF and a header after it", "ctl-mediatype"],
    ["a BEL character", "bel-mediatype"],
  ])("a manifest whose mediaType is %s is refused with 502 and not stored", async (_, repo) => {
    const before = storedFiles(store);
    const got = await get(url(`${repo}/app/manifests/v1`));
    expect(got.status).toBe(502);
    expect(errorMessage(got)).toContain(HOSTILE);
    expect(got.headers.get("x-injected")).toBeNull();
    expect(storedFiles(store)).toEqual(before);
  });

  test("an unknown but well-formed media type is served with exactly that Content-Type", async () => {
    const bytes = manifestWithMediaType(hostile.fixture, "application/vnd.example+json");
    const got = await get(url("example-mediatype/app/manifests/v1"));
    expect(got.status).toBe(200);
    expect(got.headers.get("content-type")).toBe("application/vnd.example+json");
    expect(got.headers.get("docker-content-digest")).toBe(digestOf(bytes));
    expect(got.body).toEqual(bytes);
  });
});

describe("X-Content-Type-Options: nosniff on every response", () => {
  const layer = () => hostile.fixture.blobs[1]!.digest;
  test.each([
    ["the /v2/ ping", "GET", () => `${cache.url}/v2/`, 200],
    ["a manifest", "GET", () => url("fixture/manifests/v1"), 200],
    ["a manifest HEAD", "HEAD", () => url("fixture/manifests/v1"), 200],
    ["a blob", "GET", () => url(`fixture/blobs/${layer()}`), 200],
    ["a tag list", "GET", () => url("fixture/tags/list"), 200],
    ["referrers", "GET", () => url(`fixture/referrers/${hostile.fixture.digest}`), 200],
    ["an unknown manifest", "GET", () => url("fixture/manifests/nope"), 404],
    ["a path outside the API", "GET", () => `${cache.url}/index.html`, 404],
    ["an invalid digest", "GET", () => url("fixture/blobs/sha256:zz"), 400],
    ["a push", "PUT", () => url("fixture/manifests/v2"), 405],
    ["an upstream failure", "GET", () => url("html-manifest/app/manifests/v1"), 502],
  ] as Array<[string, string, () => string, number]>)("%s", async (_, method, to, status) => {
    const got = await get(to(), { method });
    expect(got.status).toBe(status);
    expect(got.headers.get("x-content-type-options")).toBe("nosniff");
  });
});

describe("tags that cannot exist", () => {
  test.each([["-bad"], [".hidden"], ["a".repeat(129)]])("tag %s is 404 MANIFEST_UNKNOWN and never asked upstream", async (tag) => {
    const repo = `tagcheck${tag.length}${tag[0] === "-" ? "d" : "x"}`;
    const got = await get(url(`${repo}/manifests/${tag}`));
    expect(got.status).toBe(404);
    expect(errorCode(got)).toBe("MANIFEST_UNKNOWN");
    expect(hostile.requestsFor(repo)).toEqual([]);
  });
});

describe("upstream failures are logged", () => {
  test("a 502 is logged naming the upstream and the reason; ten identical ones are logged once", async () => {
    const { cache: c } = await caches.start(config);
    const first = await get(`${c.url}/v2/${HOSTILE}/not-json/app/manifests/v1`);
    expect(first.status).toBe(502);
    // The reason: what the client was told, or at least that the body was not JSON (not the
    // access lines, one per request, whose path says not-json).
    const reason = (l: string) => !l.includes(" [access] ") && l.includes(HOSTILE) && (l.includes(errorMessage(first) || "\u0000") || /JSON/i.test(l));
    await waitFor("the failure in the log", async () => c.output().split("\n").some(reason), 3000);
    expect(c.output().split("\n").filter(reason).length).toBe(1);
    for (let i = 0; i < 9; i++) expect((await get(`${c.url}/v2/${HOSTILE}/not-json/app/manifests/v1`)).status).toBe(502);
    // A failure of another repository is logged after them: once its line is there, a second
    // line of the ten, had there been one, would be there too.
    expect((await get(`${c.url}/v2/${HOSTILE}/not-json/marker/manifests/v1`)).status).toBe(502);
    await waitFor("the marker failure in the log", async () => c.output().includes("not-json/marker"), 3000);
    expect(c.output().split("\n").filter((l) => reason(l) && l.includes("not-json/app"))).toHaveLength(1);
  });
});

describe("downstream basic auth", () => {
  test("a 100-character password from htpasswd -B is accepted in full; a wrong one is refused", async () => {
    const password = "p".repeat(50) + "Q".repeat(50);
    const file = join(dir, "clients.htpasswd");
    await run(["sh", "-c", `htpasswd -Bbn carol '${password}' > ${file}`]);
    const { cache: c } = await caches.start(`htpasswd: ${file}\n${config}`);
    const as = (pw: string) => get(`${c.url}/v2/`, { headers: { Authorization: `Basic ${Buffer.from(`carol:${pw}`).toString("base64")}` } });
    expect((await as(password)).status).toBe(200);
    expect((await as("wrong-password")).status).toBe(401);
    expect((await as(password.slice(0, 71))).status).toBe(401);
  });
});

describe("paths that try to leave the API", () => {
  const passwd = readFileSync("/etc/passwd", "utf8").split("\n")[0]!;
  test.each([
    ["GET /v2/..%5c..%5cetc/passwd/manifests/x HTTP/1.1"],
    ["GET /v2/a\\..\\..\\etc/manifests/x HTTP/1.1"],
    ["GET /v2/a\\..\\..\\..\\etc\\passwd/blobs/sha256:" + "0".repeat(64) + " HTTP/1.1"],
    ["GET /v2/%2e%2e/%2e%2e/etc/passwd/manifests/x HTTP/1.1"],
    ["GET /v2/a/%2e%2e/%2e%2e/%2e%2e/etc/passwd HTTP/1.1"],
    [`GET /v2/${HOSTILE}/%2e%2e%2f%2e%2e%2fetc%2fpasswd/manifests/x HTTP/1.1`],
    [`GET /v2/${HOSTILE}/app/manifests/..%2f..%2f..%2fetc%2fpasswd HTTP/1.1`],
    [`GET /v2/${HOSTILE}/app/blobs/..%5c..%5c..%5cetc%5cpasswd HTTP/1.1`],
    ["GET /v2/app/manifests/x?ns=..%2f..%2fetc HTTP/1.1"],
  ])("%s is never a 200 and never /etc/passwd", async (line) => {
    const res = await rawRequest("127.0.0.1", cache.port, line);
    expect(res).toMatch(/^HTTP\/1\.1 \d{3}/);
    expect(res).not.toMatch(/^HTTP\/1\.1 200/);
    expect(res).not.toContain(passwd);
  });
});
