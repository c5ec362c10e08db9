// Upstreams as real sites run them, against real distribution upstreams: a mirror endpoint (with a
// repository prefix) before the origin, one of them stopped; the User-Agent; a Docker credential
// helper refreshed on a 401; UPSTREAM_CREDENTIALS; a 429 with Retry-After; and signatures
// (referrers and cosign tags) carried across an air gap.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BINARY, startCache, type RunningCache } from "../helpers/binary.ts";
import { skopeoCopy } from "../helpers/clients.ts";
import { startDistribution, type Distribution } from "../helpers/distribution.ts";
import { honest, startHostile, type HostileUpstream } from "../helpers/hostile-upstream.ts";
import { makeArtifact, makeImage, makeReferrersIndex, pushImage, type Image } from "../helpers/images.ts";
import { run } from "../helpers/procs.ts";

const MIRROR = "127.0.0.42";
const ORIGIN = "127.0.0.43";
const LIMITED = "127.0.0.44";
const PRIVATE = "127.0.0.45";
let dir: string;
let mirror: Distribution;
let origin: Distribution;
let priv: Distribution;
let hostile: HostileUpstream;
const caches: RunningCache[] = [];
const img: Record<string, Image> = {};

async function cache(yaml: string, args: string[] = [], env: Record<string, string> = {}) {
  const file = join(dir, `config-${caches.length}.yml`);
  writeFileSync(file, yaml);
  const c = await startCache(["--config-file", file, "--image-path", mkdtempSync(join(dir, "store-")), ...args], env);
  caches.push(c);
  return c;
}

/** User agents in a distribution access log (combined format: the last quoted field). */
const agents = (d: Distribution) => [...readFileSync(join(d.dir, "access.log"), "utf8").matchAll(/"[A-Z]+ \/v2\/\S+ HTTP\/[\d.]+" \d+ \d+ "[^"]*" "([^"]*)"/g)].map((m) => m[1]!);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "ocireg-sites-"));
  await run(["sh", "-c", `htpasswd -Bbn alice basic-secret > ${join(dir, "htpasswd")}`]);
  mirror = await startDistribution({ addr: `${MIRROR}:80` });
  origin = await startDistribution({ addr: `${ORIGIN}:80` });
  priv = await startDistribution({ addr: `${PRIVATE}:80`, extraYaml: `auth:\n  htpasswd:\n    realm: r\n    path: ${join(dir, "htpasswd")}\n` });
  hostile = await startHostile({ host: LIMITED });
  for (const n of ["onmirror", "onorigin", "both", "secret", "cached"]) img[n] = makeImage({ content: `${n} ${Math.random()}` });
  await pushImage({ base: mirror.base }, "proxy/library/onmirror", "v1", img.onmirror!);
  await pushImage({ base: mirror.base }, "proxy/library/both", "v1", img.both!);
  await pushImage({ base: origin.base }, "library/onorigin", "v1", img.onorigin!);
  await pushImage({ base: origin.base }, "library/both", "v1", makeImage({ content: "origin's own both" }));
  await pushImage({ base: priv.base, credentials: { user: "alice", password: "basic-secret" } }, "team/secret", "v1", img.secret!);
  hostile.add("cached", "v1", img.cached!);
}, 120_000);

afterAll(async () => {
  for (const c of caches) await c.stop();
  for (const d of [mirror, origin, priv]) await d?.stop();
  await hostile?.stop();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe("mirror endpoints", () => {
  test("the mirror (with its path as a prefix) answers first, a 404 there falls through to the origin, records stay under the logical upstream", async () => {
    const c = await cache(`registries:\n  - name: ${ORIGIN}\n    scheme: http\n    endpoints: ["http://${MIRROR}/proxy"]\n`);
    expect((await skopeoCopy(`127.0.0.1:${c.port}/${ORIGIN}/library/onmirror:v1`)).digest).toBe(img.onmirror!.digest);
    expect((await skopeoCopy(`127.0.0.1:${c.port}/${ORIGIN}/library/both:v1`)).digest).toBe(img.both!.digest); // the mirror's copy wins
    expect((await skopeoCopy(`127.0.0.1:${c.port}/${ORIGIN}/library/onorigin:v1`)).digest).toBe(img.onorigin!.digest);
    expect(mirror.requests()).toContain("GET /v2/proxy/library/onmirror/manifests/v1");
    expect(origin.requests().some((r) => r.includes("/library/onmirror/"))).toBe(false);
    expect(origin.requests()).toContain("GET /v2/library/onorigin/manifests/v1");
    const list = JSON.parse((await run([BINARY, "list", "--json", "--image-path", c.output().match(/serving (\S+) on port/)![1]!])).stdout) as Array<{ image: string }>;
    expect(list.map((i) => i.image).sort()).toEqual([`${ORIGIN}/library/both`, `${ORIGIN}/library/onmirror`, `${ORIGIN}/library/onorigin`]);
  });

  test("with the mirror stopped the origin answers; with originFallback: false the pull fails", async () => {
    const fallback = await cache(`registries:\n  - name: ${ORIGIN}\n    scheme: http\n    endpoints: ["http://${MIRROR}/proxy"]\n`);
    const strict = await cache(`registries:\n  - name: ${ORIGIN}\n    scheme: http\n    endpoints: ["http://${MIRROR}/proxy"]\n    originFallback: false\n`);
    await mirror.stop();
    try {
      expect((await skopeoCopy(`127.0.0.1:${fallback.port}/${ORIGIN}/library/onorigin:v1`)).digest).toBe(img.onorigin!.digest);
      const res = await fetch(`${strict.url}/v2/${ORIGIN}/library/onorigin/manifests/v1`);
      expect(res.status).toBe(502);
      expect(await res.text()).toContain(`cannot reach ${MIRROR}`);
    } finally {
      await mirror.restart();
    }
  });

  test("the User-Agent is ociregistry/<version> by default and the configured one where set", async () => {
    const plain = await cache(`registries:\n  - name: ${ORIGIN}\n    scheme: http\n`);
    const named = await cache(`registries:\n  - name: ${ORIGIN}\n    scheme: http\n    userAgent: corp-cache/7\n`);
    const before = agents(origin).length;
    for (const c of [plain, named]) expect((await fetch(`${c.url}/v2/${ORIGIN}/library/onorigin/manifests/v1`)).status).toBe(200);
    const seen = agents(origin).slice(before);
    expect(seen).toContain("corp-cache/7");
    expect(seen.some((a) => /^ociregistry\/\d+\.\d+\.\d+$/.test(a))).toBe(true);
  });
});

describe("credentials from outside the config", () => {
  test("a Docker credential helper supplies them, and is asked again after a 401", async () => {
    const bin = join(dir, "bin");
    mkdirSync(bin, { recursive: true });
    const secretFile = join(dir, "helper-secret");
    const calls = join(dir, "helper-calls");
    writeFileSync(secretFile, "wrong-secret");
    writeFileSync(join(bin, "docker-credential-testhelper"), `#!/bin/sh\nread server\necho "$1 $server" >> ${calls}\nprintf '{"ServerURL":"%s","Username":"alice","Secret":"%s"}' "$server" "$(cat ${secretFile})"\n`);
    chmodSync(join(bin, "docker-credential-testhelper"), 0o755);
    const dockerConfig = join(dir, "docker-config.json");
    writeFileSync(dockerConfig, JSON.stringify({ credHelpers: { [PRIVATE]: "testhelper" } }));
    const c = await cache(`registries:\n  - name: ${PRIVATE}\n    scheme: http\n`, ["--docker-config", dockerConfig], { PATH: `${bin}:${process.env.PATH}` });
    expect((await fetch(`${c.url}/v2/${PRIVATE}/team/secret/manifests/v1`)).status).toBe(401);
    writeFileSync(secretFile, "basic-secret");
    const res = await fetch(`${c.url}/v2/${PRIVATE}/team/secret/manifests/v1`);
    expect(res.status).toBe(200);
    expect(res.headers.get("docker-content-digest")).toBe(img.secret!.digest);
    expect(readFileSync(calls, "utf8").trim().split("\n").every((l) => l === `get ${PRIVATE}`)).toBe(true);
    // Cached after that: more pulls ask the helper no more.
    const asked = readFileSync(calls, "utf8").trim().split("\n").length;
    expect((await fetch(`${c.url}/v2/${PRIVATE}/team/secret/manifests/${img.secret!.digest}`)).status).toBe(200);
    expect(readFileSync(calls, "utf8").trim().split("\n").length).toBe(asked);
  });

  test("UPSTREAM_CREDENTIALS gives an upstream whose entry has none its credentials", async () => {
    const yaml = `registries:\n  - name: ${PRIVATE}\n    scheme: http\n`;
    const without = await cache(yaml);
    expect((await fetch(`${without.url}/v2/${PRIVATE}/team/secret/manifests/v1`)).status).toBe(401);
    const c = await cache(yaml, [], { UPSTREAM_CREDENTIALS: JSON.stringify({ [PRIVATE]: { username: "alice", password: "basic-secret" } }) });
    expect((await fetch(`${c.url}/v2/${PRIVATE}/team/secret/manifests/v1`)).status).toBe(200);
  });
});

describe("rate limits", () => {
  test("a 429 with Retry-After: the client gets 429 and a Retry-After, uncached requests send nothing upstream, cached content is served", async () => {
    let limited = false;
    hostile.behave("cached", (x) => {
      if (!limited || x.kind === "ping") return honest(x);
      x.res.writeHead(429, { "Retry-After": "30", "Content-Type": "application/json" });
      x.res.end('{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}');
    });
    const c = await cache(`registries:\n  - name: ${LIMITED}\n    scheme: http\nrevalidateAfter: 0s\n`);
    const url = `${c.url}/v2/${LIMITED}/cached/manifests/v1`;
    expect((await fetch(url)).status).toBe(200);
    limited = true;
    // Revalidation meets the 429: the cached tag is served all the same.
    expect((await fetch(url)).status).toBe(200);
    const before = hostile.requests.length;
    const res = await fetch(`${c.url}/v2/${LIMITED}/cached/manifests/other`);
    expect(res.status).toBe(429);
    const retryAfter = Number(res.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(30);
    expect(((await res.json()) as { errors: Array<{ code: string; message: string }> }).errors[0]).toMatchObject({ code: "TOOMANYREQUESTS", message: expect.stringContaining(LIMITED) });
    expect(hostile.requests.length).toBe(before);
  });
});

describe("signatures across the gap", () => {
  test("load --with-referrers brings referrers and cosign tags; an air-gapped cache serves them after export and load --archive; prune takes them with their subject", async () => {
    const subject = makeImage({ content: "signed image" });
    const sig = makeArtifact(subject, "application/vnd.dev.cosign.artifact.sig.v1+json", "signature");
    const sbom = makeArtifact(subject, "application/spdx+json", "sbom");
    const index = makeReferrersIndex([{ img: sig, artifactType: "application/vnd.dev.cosign.artifact.sig.v1+json" }, { img: sbom, artifactType: "application/spdx+json" }]);
    const cosignSig = makeArtifact(subject, "application/vnd.dev.cosign.simplesigning.v1+json", "cosign");
    const repo = "signed/app";
    await pushImage({ base: origin.base }, repo, "v1", subject);
    for (const a of [sig, sbom]) await pushImage({ base: origin.base }, repo, a.digest, a);
    const fallbackTag = subject.digest.replace(":", "-");
    await pushImage({ base: origin.base }, repo, fallbackTag, index);
    await pushImage({ base: origin.base }, repo, `${fallbackTag}.sig`, cosignSig);

    const config = join(dir, "signed.yml");
    writeFileSync(config, `registries:\n  - name: ${ORIGIN}\n    scheme: http\n`);
    const list = join(dir, "signed.txt");
    writeFileSync(list, `${ORIGIN}/${repo}:v1\n`);
    const a = mkdtempSync(join(dir, "signed-a-"));
    const loaded = await run([BINARY, "--config-file", config, "--image-path", a, "load", "--image-file", list, "--with-referrers"]);
    expect(loaded.stderr + loaded.stdout).toContain("3 referrer(s)");
    const tar = join(dir, "signed.tar");
    await run([BINARY, "--image-path", a, "export", "--out", tar]);
    const b = mkdtempSync(join(dir, "signed-b-"));
    await run([BINARY, "--image-path", b, "load", "--archive", tar]);

    const gapped = await startCache(["--image-path", b, "--air-gapped"]);
    caches.push(gapped);
    const refs = await fetch(`${gapped.url}/v2/${ORIGIN}/${repo}/referrers/${subject.digest}`);
    expect(refs.status).toBe(200);
    const all = (await refs.json()) as { manifests: Array<{ digest: string }> };
    expect(all.manifests.map((m) => m.digest).sort()).toEqual([sig.digest, sbom.digest].sort());
    const filtered = await fetch(`${gapped.url}/v2/${ORIGIN}/${repo}/referrers/${subject.digest}?artifactType=application/spdx%2Bjson`);
    expect(filtered.headers.get("oci-filters-applied")).toBe("artifactType");
    expect(((await filtered.json()) as { manifests: Array<{ digest: string }> }).manifests.map((m) => m.digest)).toEqual([sbom.digest]);
    for (const ref of [sig.digest, sbom.digest, `${fallbackTag}.sig`]) {
      expect((await fetch(`${gapped.url}/v2/${ORIGIN}/${repo}/manifests/${ref}`)).status).toBe(200);
    }
    expect((await fetch(`${gapped.url}/v2/${ORIGIN}/${repo}/blobs/${sig.blobs[1]!.digest}`)).status).toBe(200);
    await gapped.stop();

    // Prune: the subject is old, so it goes, and its referrers and cosign tag go with it.
    const pruned = await run([BINARY, "--image-path", b, "prune", "--older-than", "0s"]);
    expect(pruned.stdout).toContain(`removed ${ORIGIN}/${repo}:v1`);
    expect(pruned.stdout).toContain(`removed ${ORIGIN}/${repo}:${fallbackTag}.sig`);
    expect(pruned.stdout).toContain(`removed ${ORIGIN}/${repo}:${fallbackTag}`);
    const left = JSON.parse((await run([BINARY, "--image-path", b, "list", "--json"])).stdout) as unknown[];
    expect(left).toEqual([]);
  });
});
