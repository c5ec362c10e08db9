// No client can stop the cache (issue 18 A1, A2), against the compiled binary: compressed token
// bombs cost only the bytes sent, and 288 dripping cold blobs over nine spellings of one hostile
// host neither starve a real upstream (distribution) nor open its circuit. Servers on
// 127.0.13.1-60, the cache on 127.0.0.1.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { brotliCompressSync, gzipSync } from "node:zlib";
import { startCache, type RunningCache } from "../helpers/binary.ts";
import { startDistribution, type Distribution } from "../helpers/distribution.ts";
import { bearer, startHostile, watchMemory, type Behaviour, type HostileUpstream } from "../helpers/hostile-upstream.ts";
import { makeImage, pushImage } from "../helpers/images.ts";
import { makePki } from "../helpers/pki.ts";
import { rawOpen, type RawConnection } from "../helpers/raw-http.ts";
import { cacheFactory, errorMessage, get } from "../helpers/security.ts";
import { digestOf } from "../../src/oci/digest.ts";
import { OCI_INDEX, OCI_MANIFEST } from "../../src/oci/mediatypes.ts";

const BOMBS = "127.0.13.1";
const REAL = "127.0.13.2";
/** The dripping host, and nine ways to spell it. */
const DRIP = "127.0.13.60";
const SPELLINGS = ["127.0.13.60", "2130709820", "0x7f000d3c", "127.0.3388", "0177.0.015.074", "0x7f.0.0xd.0x3c", "127.0.0xd3c", "[::ffff:127.0.13.60]", "[::ffff:7f00:d3c]"];
const MB = 1024 * 1024;
const GiB = 1024 * MB;

let dir: string;
let bombs: HostileUpstream;
let dripper: HostileUpstream;
let real: Distribution;
let caches: ReturnType<typeof cacheFactory>;
let ca: string;
const img = makeImage({ content: 4000 });
/** A 4 MB index of 20,000 platform manifests: the largest manifest the spec allows, and costly to parse. */
const wide = new TextEncoder().encode(JSON.stringify({
  schemaVersion: 2, mediaType: OCI_INDEX,
  manifests: Array.from({ length: 20_000 }, (_, i) => ({ mediaType: OCI_MANIFEST, digest: `sha256:${i.toString(16).padStart(64, "0")}`, size: 500, platform: { os: "linux", architecture: "amd64" } })),
}));

/** A token endpoint answering `body` with these headers: a small body that inflates to 1 GiB. */
function tokenBomb(body: Uint8Array, headers: Record<string, string>, withLength: boolean): Behaviour {
  return bearer({
    onToken: (x) => {
      x.res.writeHead(200, { "Content-Type": "application/json", ...headers, ...(withLength ? { "Content-Length": String(body.byteLength) } : {}) });
      x.res.end(Buffer.from(body));
    },
  });
}

/** Blob requests open at the dripping host now, and the most ever. */
const dripOpen = { now: 0, peak: 0 };
/** Headers at once for a 1 MiB blob, then one byte every 2 s. */
const dripBlob: Behaviour = async (x) => {
  if (x.kind !== "blobs") return void x.res.writeHead(404).end();
  dripOpen.now++;
  dripOpen.peak = Math.max(dripOpen.peak, dripOpen.now);
  x.res.once("close", () => dripOpen.now--);
  x.res.writeHead(200, { "Content-Type": "application/octet-stream", "Content-Length": String(MB) });
  x.res.flushHeaders();
  while (!x.res.destroyed && !x.res.writableEnded) {
    x.res.write("x");
    await new Promise((r) => setTimeout(r, 2000));
  }
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "ocireg-sec-avail-"));
  caches = cacheFactory(dir);
  const inflated = Buffer.alloc(GiB / 4, 32);
  bombs = await startHostile({ host: BOMBS });
  bombs.behave("br", tokenBomb(brotliCompressSync(inflated), { "Content-Encoding": "br" }, true));
  bombs.behave("gzip", tokenBomb(gzipSync(inflated), { "Content-Encoding": "gzip" }, false));
  bombs.behave("wide", (x) => {
    if (x.kind !== "manifests") return void x.res.writeHead(404, { "Content-Length": "0" }).end();
    x.res.writeHead(200, { "Content-Type": OCI_INDEX, "Content-Length": String(wide.byteLength), "Docker-Content-Digest": digestOf(wide) });
    x.res.end(Buffer.from(wide));
  });
  bombs.behave("zstd", tokenBomb(Bun.zstdCompressSync(inflated), { "Content-Encoding": "zstd" }, true));
  // Client-named upstreams are HTTPS: the dripper serves TLS on :443 with a certificate for every
  // address spelling, from a CA the cache trusts through NODE_EXTRA_CA_CERTS.
  const pki = await makePki([DRIP, "::ffff:127.0.13.60"]);
  ca = pki.ca;
  dripper = await startHostile({ host: DRIP, tls: { cert: pki.serverCert, key: pki.serverKey } });
  dripper.behave("drip", dripBlob);
  real = await startDistribution({ addr: `${REAL}:80` });
  await pushImage({ base: real.base }, "library/app", "v1", img);
}, 120_000);

let starving: RunningCache | undefined;

afterAll(async () => {
  await caches?.stopAll("SIGKILL");
  await starving?.stop("SIGKILL");
  await bombs?.stop();
  await dripper?.stop();
  await real?.stop();
});

const listed = `registries:\n  - { name: ${REAL}, scheme: http }\n  - { name: ${BOMBS}, scheme: http }\n`;

/** A healthy pull through the cache: the manifest and every blob from the real upstream. */
async function healthyPull(url: string, ns = REAL) {
  const m = await get(`${url}/v2/library/app/manifests/v1?ns=${ns}`, { headers: { Accept: img.mediaType } }, 10_000);
  const blobs = await Promise.all(img.blobs.map((b) => get(`${url}/v2/library/app/blobs/${b.digest}?ns=${ns}`, {}, 10_000)));
  return { manifest: m.status, ms: Math.max(m.ms, ...blobs.map((b) => b.ms)), blobsOk: blobs.every((b, i) => b.status === 200 && b.body && digestOf(b.body) === img.blobs[i]!.digest) };
}

describe("compressed token bombs", () => {
  test("32 parallel pulls per encoding each fail fast with the reason, and memory stays bounded", async () => {
    const { cache } = await caches.start(`${listed}upstreams: any\n`);
    const mem = watchMemory(cache.proc.pid, 600 * MB);
    const kinds = ["br", "gzip", "zstd"];
    const gots = await Promise.all(kinds.flatMap((k) => Array.from({ length: 32 }, (_, i) =>
      get(`${cache.url}/v2/${k}/r${i}/manifests/v1?ns=${BOMBS}`, {}, 20_000).then((g) => ({ k, g })))));
    const meanwhile = await healthyPull(cache.url);
    mem.stop();
    for (const { g } of gots) expect({ status: g.status, encoded: errorMessage(g).includes("-encoded") }).toEqual({ status: 502, encoded: true });
    expect(Math.max(...gots.map(({ g }) => g.ms))).toBeLessThan(10_000);
    expect(meanwhile).toMatchObject({ manifest: 200, blobsOk: true });
    expect(mem.peak()).toBeLessThan(150 * MB);
  }, 60_000);
});

describe("upstream starvation", () => {
  test("288 dripping blobs over nine spellings of one host hold one cap; a real upstream keeps serving, its circuit closed", async () => {
    const config = join(dir, "starve.yml");
    writeFileSync(config, `${listed}upstreams: any\nmaxUpstreamConnections: 32\nminTransferRate: 1KiB/s\ntransferRateWindow: 3s\npullTimeout: 20s\n`);
    const cache = (starving = await startCache(["--config-file", config, "--image-path", join(dir, "starve")], { NODE_EXTRA_CA_CERTS: ca }));
    const mem = watchMemory(cache.proc.pid, 600 * MB);
    const conns: RawConnection[] = [];
    for (let i = 0; i < 288; i++) {
      const ns = encodeURIComponent(SPELLINGS[i % SPELLINGS.length]!);
      const digest = `sha256:${(i + 1).toString(16).padStart(64, "0")}`;
      conns.push(await rawOpen("127.0.0.1", cache.port, `GET /v2/drip/b/blobs/${digest}?ns=${ns} HTTP/1.1\r\nHost: cache\r\nConnection: close\r\n\r\n`));
    }
    // While the drip lasts: a real upstream's pulls, again and again, each complete and quick.
    const rounds: Array<Awaited<ReturnType<typeof healthyPull>>> = [];
    const until = Date.now() + 8000;
    while (Date.now() < until) rounds.push(await healthyPull(cache.url, REAL));
    const status = await get(`${cache.url}/status.json`);
    const cut = (await cache.settledOutput()).includes("minTransferRate");
    for (const c of conns) c.close();
    mem.stop();
    // One cap of 32 for all nine spellings (nine caps would allow 288). A cut drip's socket closes
    // at the server a moment after the cache freed its slot, so a few may overlap their successors.
    expect(dripOpen.peak).toBeLessThanOrEqual(40);
    expect(dripOpen.peak).toBeGreaterThan(0);
    expect(rounds.length).toBeGreaterThan(2);
    for (const r of rounds) expect(r).toMatchObject({ manifest: 200, blobsOk: true });
    expect(Math.max(...rounds.map((r) => r.ms))).toBeLessThan(3000);
    expect(cut).toBe(true);
    const rows = (JSON.parse(new TextDecoder().decode(status.body!)) as { upstreams: Array<{ name: string; circuit: string }> }).upstreams;
    expect(rows.find((r) => r.name === REAL)?.circuit).toBe("closed");
    expect(mem.peak()).toBeLessThan(150 * MB);
  }, 90_000);
});

describe("many large manifests at once", () => {
  test("64 clients fetching 64 different 4 MB indexes get them all, in bounded memory, while a real upstream keeps serving", async () => {
    const { cache } = await caches.start(`${listed}`);
    const mem = watchMemory(cache.proc.pid, 1200 * MB);
    const clients = Promise.all(Array.from({ length: 64 }, (_, i) => get(`${cache.url}/v2/wide/r${i}/manifests/v1?ns=${BOMBS}`, { headers: { Accept: OCI_INDEX } }, 60_000)));
    const meanwhile = await healthyPull(cache.url);
    const gots = await clients;
    mem.stop();
    for (const g of gots) expect({ status: g.status, digest: g.body && digestOf(g.body) }).toEqual({ status: 200, digest: digestOf(wide) });
    expect(meanwhile).toMatchObject({ manifest: 200, blobsOk: true });
    expect(mem.peak()).toBeLessThan(150 * MB);
  }, 90_000);
});
