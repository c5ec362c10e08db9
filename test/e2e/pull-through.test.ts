// The compiled binary as a pull-through cache in front of real distribution upstreams (http and
// https with a test CA), pulled through by skopeo, containerd (ctr) and podman.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, rmSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startCache, type RunningCache } from "../helpers/binary.ts";
import { podmanPull, skopeoCopy, startContainerd, type Containerd } from "../helpers/clients.ts";
import { startDistribution, type Distribution } from "../helpers/distribution.ts";
import { allBlobs, makeImage, makeIndex, pushImage, type Image } from "../helpers/images.ts";
import { makePki, type Pki } from "../helpers/pki.ts";

const HTTP_HOST = "127.0.0.2";
const HTTPS_HOST = "127.0.0.3";

let pki: Pki;
let http: Distribution;
let https: Distribution;
let cache: RunningCache;
let ctr: Containerd;
let store: string;
const images: Record<string, Image> = {
  multi: makeIndex(["amd64", "arm64"]),
  docker: makeImage({ docker: true }),
  big: makeImage({ content: 50 * 1024 * 1024, uncompressed: true }),
};
const repos = { multi: "library/multi", docker: "library/dockerv2", big: "library/big" } as const;
type Name = keyof typeof repos;

beforeAll(async () => {
  pki = await makePki([HTTPS_HOST]);
  http = await startDistribution({ addr: `${HTTP_HOST}:80` });
  https = await startDistribution({ addr: `${HTTPS_HOST}:443`, tls: { cert: pki.serverCert, key: pki.serverKey } });
  for (const [name, repo] of Object.entries(repos)) {
    await pushImage({ base: http.base }, repo, "v1", images[name]!);
    await pushImage({ base: https.base, tls: { ca: readFileSync(pki.ca, "utf8") } }, repo, "v1", images[name]!);
  }
  store = mkdtempSync(join(tmpdir(), "ocireg-store-"));
  const config = join(store, "..", `${store.split("/").pop()}.yml`);
  writeFileSync(config, `registries:\n  - name: ${HTTP_HOST}\n    scheme: http\n  - name: ${HTTPS_HOST}\n    tls:\n      ca: ${pki.ca}\n`);
  // Global flags before the subcommand, as the seed project's users type them.
  cache = await startCache(["--config-file", config, "--image-path", store, "--default-ns", HTTP_HOST, "--revalidate-after", "1h"]);
  ctr = await startContainerd();
}, 120_000);

afterAll(async () => {
  await ctr?.stop();
  await cache?.stop();
  await http?.stop();
  await https?.stop();
  if (store) rmSync(store, { recursive: true, force: true });
}, 120_000);

function upstreamRequests() {
  return [...http.requests(), ...https.requests()].filter((r) => r !== "GET /v2/");
}

async function expectSameBytes(dir: string, img: Image) {
  expect(readFileSync(join(dir, "manifest.json"))).toEqual(Buffer.from(img.manifest));
  for (const b of img.blobs) {
    expect(Buffer.compare(readFileSync(join(dir, b.digest.slice(7))), Buffer.from(b.bytes))).toBe(0);
  }
}

describe("skopeo, in-path upstream", () => {
  for (const [upstream, label] of [[HTTP_HOST, "http"], [HTTPS_HOST, "https with a custom CA"]] as const) {
    for (const name of Object.keys(repos) as Name[]) {
      test(`pulls ${name} from ${label} with the upstream's digest and bytes`, async () => {
        const img = images[name]!;
        const r = await skopeoCopy(`127.0.0.1:${cache.port}/${upstream}/${repos[name]}:v1`, { all: name === "multi" });
        try {
          expect(r.digest).toBe(img.digest);
          if (name === "multi") {
            expect(readFileSync(join(r.dir, "manifest.json"))).toEqual(Buffer.from(img.manifest));
            for (const child of img.children) {
              expect(readFileSync(join(r.dir, `${child.digest.slice(7)}.manifest.json`))).toEqual(Buffer.from(child.manifest));
            }
          } else {
            await expectSameBytes(r.dir, img);
          }
        } finally {
          r.cleanup();
        }
      });
    }
  }
});

describe("containerd, hosts.toml mirror (?ns=)", () => {
  for (const name of Object.keys(repos) as Name[]) {
    test(`ctr pulls ${name} with the upstream's digest`, async () => {
      const digest = await ctr.pull(`${HTTP_HOST}/${repos[name]}:v1`, HTTP_HOST, cache.url);
      expect(digest).toBe(images[name]!.digest);
    });
  }
  test("ctr pulls from the https upstream", async () => {
    const digest = await ctr.pull(`${HTTPS_HOST}/${repos.docker}:v1`, HTTPS_HOST, cache.url);
    expect(digest).toBe(images.docker!.digest);
  });
});

describe("podman, registries.conf mirror (in-path)", () => {
  test("podman pulls the multi-arch image through the mirror", async () => {
    const digest = await podmanPull(`${HTTP_HOST}/${repos.multi}:v1`, HTTP_HOST, `127.0.0.1:${cache.port}/${HTTP_HOST}`);
    expect(digest).toBe(images.multi!.digest);
  });
});

describe("Docker registry-mirrors form (no upstream in the request)", () => {
  test("a request naming no upstream goes to the default namespace", async () => {
    // Docker's daemon sends exactly /v2/<repo>/manifests/<tag> to a registry mirror.
    const r = await skopeoCopy(`127.0.0.1:${cache.port}/${repos.docker}:v1`);
    try {
      expect(r.digest).toBe(images.docker!.digest);
      await expectSameBytes(r.dir, images.docker!);
    } finally {
      r.cleanup();
    }
  });
});

describe("warm cache", () => {
  test("a second pull of every image makes no upstream request", async () => {
    const before = upstreamRequests().length;
    expect(before).toBeGreaterThan(0);
    for (const name of Object.keys(repos) as Name[]) {
      for (const upstream of [HTTP_HOST, HTTPS_HOST]) {
        const r = await skopeoCopy(`127.0.0.1:${cache.port}/${upstream}/${repos[name]}:v1`, { all: name === "multi" });
        expect(r.digest).toBe(images[name]!.digest);
        r.cleanup();
      }
    }
    const fresh = await startContainerd();
    try {
      for (const name of Object.keys(repos) as Name[]) {
        expect(await fresh.pull(`${HTTP_HOST}/${repos[name]}:v1`, HTTP_HOST, cache.url)).toBe(images[name]!.digest);
      }
    } finally {
      await fresh.stop();
    }
    expect(upstreamRequests().slice(before)).toEqual([]);
  });

  test("the store holds every blob under blobs/sha256 and a tag record per tag", async () => {
    for (const name of Object.keys(repos) as Name[]) {
      for (const b of allBlobs(images[name]!)) {
        expect(Bun.file(join(store, "blobs/sha256", b.digest.slice(7))).size).toBe(b.bytes.byteLength);
      }
      const rec = JSON.parse(readFileSync(join(store, "repositories", HTTP_HOST, repos[name], "_tags", "v1.json"), "utf8"));
      expect(rec).toMatchObject({ upstream: HTTP_HOST, repository: repos[name], tag: "v1", digest: images[name]!.digest });
    }
  });

  test("with the upstreams stopped, cached images still pull", async () => {
    await http.stop();
    await https.stop();
    try {
      const r = await skopeoCopy(`127.0.0.1:${cache.port}/${HTTPS_HOST}/${repos.big}:v1`);
      expect(r.digest).toBe(images.big!.digest);
      r.cleanup();
      const fresh = await startContainerd();
      try {
        expect(await fresh.pull(`${HTTP_HOST}/${repos.multi}:v1`, HTTP_HOST, cache.url)).toBe(images.multi!.digest);
      } finally {
        await fresh.stop();
      }
      // Something never cached fails fast with a JSON error naming the upstream.
      const started = Date.now();
      const res = await fetch(`${cache.url}/v2/${HTTP_HOST}/library/never/manifests/v1`);
      expect(res.status).toBe(502);
      const body = await res.json() as { errors: Array<{ code: string; message: string }> };
      expect(body.errors[0]!.code).toBe("MANIFEST_UNKNOWN");
      expect(body.errors[0]!.message).toContain(HTTP_HOST);
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      await http.restart();
      await https.restart();
    }
  });
});
