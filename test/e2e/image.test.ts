// The cache's own image: scripts/build-image.sh writes an OCI layout and an oci-archive without
// a daemon; podman runs the archive as user 65532 and skopeo pulls a real upstream's image
// through the containerised cache.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createReadStream, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createGunzip } from "node:zlib";
import tar, { type Header } from "tar-stream";
import { BINARY, requireBinary } from "../helpers/binary.ts";
import { skopeoCopy } from "../helpers/clients.ts";
import { startDistribution, type Distribution } from "../helpers/distribution.ts";
import { makeImage, pushImage } from "../helpers/images.ts";
import { runContainer, type PodmanContainer } from "../helpers/podman.ts";
import { requireTool, run, waitFor } from "../helpers/procs.ts";

const ROOT = join(import.meta.dir, "../..");
const UPSTREAM = "127.0.2.2";
const VERSION = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;
const image = makeImage({ content: "pulled through the containerised cache\n" });

let work: string;
let out: string;
let upstream: Distribution;
let container: PodmanContainer;
let port: number;

async function freePort() {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const p = l.port;
  l.stop(true);
  return p;
}

async function buildImage(dir: string) {
  await run(["bash", "scripts/build-image.sh", "--out", dir], { cwd: ROOT });
}

async function inspect(ref: string, config = false) {
  const r = await run(["skopeo", "inspect", ...(config ? ["--config"] : []), ref]);
  return JSON.parse(r.stdout);
}

beforeAll(async () => {
  requireBinary();
  requireTool("/usr/bin/skopeo");
  work = mkdtempSync(join(tmpdir(), "ocireg-image-"));
  out = join(work, "out");
  await buildImage(out);
  upstream = await startDistribution({ addr: `${UPSTREAM}:80` });
  await pushImage({ base: upstream.base }, "library/hello", "v1", image);
  writeFileSync(join(work, "config.yaml"), `registries:\n  - name: ${UPSTREAM}\n    scheme: http\n`);
  port = await freePort();
  container = await runContainer(`oci-archive:${join(out, "ociregistry.oci.tar")}`,
    ["--config-file", "/etc/ociregistry/config.yaml", "--port", String(port), "--host", "127.0.0.1"],
    { volumes: [`${join(work, "config.yaml")}:/etc/ociregistry/config.yaml:ro`] });
  await waitFor("the containerised cache", async () => (await fetch(`http://127.0.0.1:${port}/v2/`)).status === 200, 30_000)
    .catch(async (e) => {
      throw new Error(`${(e as Error).message}\n${await container.logs()}`);
    });
}, 180_000);

afterAll(async () => {
  await container?.stop();
  await upstream?.stop();
  if (upstream) rmSync(upstream.dir, { recursive: true, force: true });
  if (work) rmSync(work, { recursive: true, force: true });
}, 60_000);

describe("scripts/build-image.sh", () => {
  test("names one manifest `latest` and the package version in the layout, and ships it alone in the archive", async () => {
    const latest = await inspect(`oci:${join(out, "image")}:latest`);
    const versioned = await inspect(`oci:${join(out, "image")}:${VERSION}`);
    const archived = await inspect(`oci-archive:${join(out, "ociregistry.oci.tar")}`);
    expect(versioned.Digest).toBe(latest.Digest);
    expect(archived.Digest).toBe(latest.Digest);
    const index = JSON.parse(readFileSync(join(out, "image", "index.json"), "utf8"));
    expect(index.manifests.map((m: { annotations: Record<string, string> }) => m.annotations["org.opencontainers.image.ref.name"]))
      .toEqual(["latest", VERSION]);
  });

  test("configures serve as user 65532 with port 8080, the store volume and the CA bundle", async () => {
    const cfg = await inspect(`oci:${join(out, "image")}:latest`, true);
    expect(cfg.config.User).toBe("65532:65532");
    expect(cfg.config.Entrypoint).toEqual(["/usr/local/bin/ociregistry", "serve"]);
    expect(Object.keys(cfg.config.ExposedPorts)).toEqual(["8080/tcp"]);
    expect(Object.keys(cfg.config.Volumes)).toEqual(["/var/lib/ociregistry"]);
    expect(cfg.config.Env).toContain("SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt");
    expect(cfg.rootfs.diff_ids).toHaveLength(1);
  });

  test("puts the binary, every library ldd names, CA certificates and user nonroot in a layer dated 1970", async () => {
    const blobs = join(out, "image", "blobs", "sha256");
    const layer = readdirSync(blobs).map((f) => join(blobs, f)).sort((a, b) => statSync(b).size - statSync(a).size)[0]!;
    const entries = new Map<string, Header>();
    let passwd = "";
    const extract = tar.extract();
    createReadStream(layer).pipe(createGunzip()).pipe(extract);
    for await (const entry of extract) {
      const name = entry.header.name.replace(/\/$/, "");
      entries.set(name, entry.header);
      const chunks: Buffer[] = [];
      for await (const c of entry) chunks.push(c as Buffer);
      if (name === "etc/passwd") passwd = Buffer.concat(chunks).toString("utf8");
    }
    const bin = entries.get("usr/local/bin/ociregistry");
    expect(bin?.size).toBe(statSync(BINARY).size);
    expect(bin?.mode).toBe(0o755);
    const ldd = (await run(["ldd", BINARY])).stdout;
    const libs = [...ldd.matchAll(/^\s*(?:\S+ => )?(\/\S+)/gm)].map((m) => m[1]!.slice(1));
    expect(libs.length).toBeGreaterThan(1);
    for (const lib of libs) expect(entries.has(lib)).toBe(true);
    expect(entries.get("etc/ssl/certs/ca-certificates.crt")?.size).toBe(statSync("/etc/ssl/certs/ca-certificates.crt").size);
    expect(passwd).toContain("nonroot:x:65532:65532:");
    expect(entries.get("tmp")?.mode).toBe(0o1777);
    for (const [name, h] of entries) {
      expect(h.mtime?.getTime()).toBe(0);
      const owner = name === "var/lib/ociregistry" || name === "home/nonroot" ? 65532 : 0;
      expect([name, h.uid, h.gid]).toEqual([name, owner, owner]);
    }
  });

  test("builds the same digests again from the same binary", async () => {
    const again = join(work, "again");
    await buildImage(again);
    expect(readFileSync(join(again, "image", "index.json"))).toEqual(readFileSync(join(out, "image", "index.json")));
    const sum = async (f: string) => new Bun.CryptoHasher("sha256").update(await Bun.file(f).bytes()).digest("hex");
    expect(await sum(join(again, "ociregistry.oci.tar"))).toBe(await sum(join(out, "ociregistry.oci.tar")));
  }, 60_000);
});

describe("the image run by podman", () => {
  async function pullThroughCache() {
    const r = await skopeoCopy(`127.0.0.1:${port}/${UPSTREAM}/library/hello:v1`);
    try {
      expect(r.digest).toBe(image.digest);
      expect(readFileSync(join(r.dir, "manifest.json"))).toEqual(Buffer.from(image.manifest));
    } finally {
      r.cleanup();
    }
  }

  test("serves a pull through the cache with the upstream's digest and bytes", async () => {
    await pullThroughCache();
    expect(upstream.requests()).toContain("GET /v2/library/hello/manifests/v1");
  });

  test("runs the cache as 65532, which owns what it writes to the store volume", async () => {
    const status = readFileSync(`/proc/${await container.pid()}/status`, "utf8");
    expect(status).toMatch(/^Uid:\t65532\t65532\t65532\t65532$/m);
    expect(status).toMatch(/^Gid:\t65532\t65532\t65532\t65532$/m);
    await pullThroughCache();
    const store = await container.volumeSource("/var/lib/ociregistry");
    const layer = image.blobs[1]!.digest.slice("sha256:".length);
    const st = statSync(join(store, "blobs", "sha256", layer));
    expect([st.uid, st.gid]).toEqual([65532, 65532]);
  });
});
