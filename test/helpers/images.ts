// Builds small but real container images in memory (valid tar layers, configs with diff_ids)
// and pushes them to a registry over the distribution API, byte for byte.
import { randomBytes } from "node:crypto";
import { digestOf } from "../../src/oci/digest.ts";
import { parseChallenge } from "../../src/upstream/auth.ts";
import {
  DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST,
} from "../../src/oci/mediatypes.ts";

export interface Blob {
  digest: string;
  bytes: Uint8Array<ArrayBuffer>;
  mediaType: string;
}

export interface Image {
  mediaType: string;
  manifest: Uint8Array<ArrayBuffer>;
  digest: string;
  blobs: Blob[];
  /** Platform manifests of an index. */
  children: Image[];
}

/** A ustar header block for a regular file (or `type`) of `size` bytes. */
export function tarHeader(name: string, size: number, type = "0"): Uint8Array<ArrayBuffer> {
  const h = new Uint8Array(512);
  const enc = new TextEncoder();
  const put = (s: string, off: number, len: number) => h.set(enc.encode(s).subarray(0, len), off);
  const octal = (n: number, len: number) => n.toString(8).padStart(len - 1, "0") + "\0";
  put(name, 0, 100);
  put(octal(0o644, 8), 100, 8);
  put(octal(0, 8), 108, 8);
  put(octal(0, 8), 116, 8);
  put(octal(size, 12), 124, 12);
  put(octal(1_700_000_000, 12), 136, 12);
  put("        ", 148, 8);
  put(type, 156, 1);
  put("ustar\0", 257, 6);
  put("00", 263, 2);
  let sum = 0;
  for (const b of h) sum += b;
  put(octal(sum, 7) + " ", 148, 8);
  return h;
}

/** A one-file ustar archive. */
export function tarOf(name: string, content: Uint8Array): Uint8Array<ArrayBuffer> {
  const pad = (512 - (content.byteLength % 512)) % 512;
  const out = new Uint8Array(512 + content.byteLength + pad + 1024);
  out.set(tarHeader(name, content.byteLength), 0);
  out.set(content, 512);
  return out;
}

function json(v: unknown): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(JSON.stringify(v));
}

function blob(bytes: Uint8Array<ArrayBuffer>, mediaType: string): Blob {
  return { digest: digestOf(bytes), bytes, mediaType };
}

export interface ImageOptions {
  arch?: string;
  /** Bytes of the layer's file; random when a number. */
  content?: string | number;
  docker?: boolean;
  /** Store the layer uncompressed (fast for big layers). */
  uncompressed?: boolean;
}

export function makeImage(opts: ImageOptions = {}): Image {
  const arch = opts.arch ?? "amd64";
  const content = typeof opts.content === "number"
    ? new Uint8Array(randomBytes(opts.content))
    : new TextEncoder().encode(opts.content ?? `hello from ${arch} ${Math.random()}\n`);
  const tar = tarOf("hello.txt", content);
  const layerBytes: Uint8Array<ArrayBuffer> = opts.uncompressed ? tar : (Bun.gzipSync(tar) as Uint8Array<ArrayBuffer>);
  const layerType = opts.docker
    ? "application/vnd.docker.image.rootfs.diff.tar.gzip"
    : opts.uncompressed ? "application/vnd.oci.image.layer.v1.tar" : "application/vnd.oci.image.layer.v1.tar+gzip";
  const layer = blob(layerBytes, layerType);
  const config = blob(json({
    architecture: arch, os: "linux",
    config: { Cmd: ["/hello.txt"] },
    rootfs: { type: "layers", diff_ids: [digestOf(tar)] },
  }), opts.docker ? "application/vnd.docker.container.image.v1+json" : "application/vnd.oci.image.config.v1+json");
  const mediaType = opts.docker ? DOCKER_MANIFEST : OCI_MANIFEST;
  const manifest = json({
    schemaVersion: 2, mediaType,
    config: { mediaType: config.mediaType, digest: config.digest, size: config.bytes.byteLength },
    layers: [{ mediaType: layer.mediaType, digest: layer.digest, size: layer.bytes.byteLength }],
  });
  return { mediaType, manifest, digest: digestOf(manifest), blobs: [config, layer], children: [] };
}

/** An OCI image index, or a Docker manifest list of Docker images with `docker: true`. */
export function makeIndex(arches: string[], opts: { docker?: boolean } = {}): Image {
  const children = arches.map((arch) => makeImage({ arch, docker: opts.docker }));
  const mediaType = opts.docker ? DOCKER_MANIFEST_LIST : OCI_INDEX;
  const manifest = json({
    schemaVersion: 2, mediaType,
    manifests: children.map((c, i) => ({
      mediaType: c.mediaType, digest: c.digest, size: c.manifest.byteLength,
      platform: { architecture: arches[i], os: "linux" },
    })),
  });
  return { mediaType, manifest, digest: digestOf(manifest), blobs: [], children };
}

/** The config blob of an image (not an index), parsed. */
export function configOf(img: Image): { architecture: string; rootfs: { diff_ids: string[] } } {
  return JSON.parse(new TextDecoder().decode(img.blobs[0]!.bytes));
}

export interface PushTarget {
  /** `http://127.0.0.2` or `https://127.0.0.3` */
  base: string;
  tls?: Record<string, unknown>;
  /** Sent as basic auth, or to the token server when the registry answers with a bearer challenge. */
  credentials?: { user: string; password: string };
}

const pushTokens = new Map<string, string>();

async function req(t: PushTarget, method: string, path: string, body?: Uint8Array, headers: Record<string, string> = {}): Promise<Response> {
  const url = path.startsWith("http") ? path : `${t.base}${path}`;
  const basic = t.credentials ? `Basic ${Buffer.from(`${t.credentials.user}:${t.credentials.password}`).toString("base64")}` : undefined;
  const send = (authorization?: string) => fetch(url, {
    method, body, headers: { ...headers, ...(authorization ? { Authorization: authorization } : {}) }, tls: t.tls,
  } as RequestInit);
  let res = await send(pushTokens.get(t.base) ?? basic);
  const challenge = parseChallenge(res.headers.get("www-authenticate"));
  if (res.status === 401 && challenge?.scheme === "bearer" && basic) {
    const repo = new URL(url).pathname.split("/").slice(2, -2).join("/").replace(/\/blobs$/, "");
    const tokenUrl = new URL(challenge.params.realm!);
    tokenUrl.searchParams.set("service", challenge.params.service ?? "");
    tokenUrl.searchParams.set("scope", `repository:${repo}:pull,push`);
    const tok = (await (await fetch(tokenUrl, { headers: { Authorization: basic } })).json()) as { token: string };
    pushTokens.set(t.base, `Bearer ${tok.token}`);
    res = await send(`Bearer ${tok.token}`);
  }
  return res;
}

async function pushBlob(t: PushTarget, repo: string, b: Blob) {
  const head = await req(t, "HEAD", `/v2/${repo}/blobs/${b.digest}`);
  if (head.ok) return;
  const start = await req(t, "POST", `/v2/${repo}/blobs/uploads/`);
  if (start.status !== 202) throw new Error(`upload start ${start.status}: ${await start.text()}`);
  const loc = new URL(start.headers.get("location")!, t.base);
  loc.searchParams.set("digest", b.digest);
  const put = await req(t, "PUT", loc.toString(), b.bytes, { "Content-Type": "application/octet-stream" });
  if (put.status !== 201) throw new Error(`blob put ${put.status}: ${await put.text()}`);
}

async function pushManifest(t: PushTarget, repo: string, ref: string, img: Image) {
  for (const b of img.blobs) await pushBlob(t, repo, b);
  for (const c of img.children) await pushManifest(t, repo, c.digest, c);
  const res = await req(t, "PUT", `/v2/${repo}/manifests/${ref}`, img.manifest, { "Content-Type": img.mediaType });
  if (res.status !== 201) throw new Error(`manifest put ${res.status}: ${await res.text()}`);
}

/** Pushes an image (or index and its platform images) as `repo:tag`, bytes unchanged. */
export async function pushImage(t: PushTarget, repo: string, tag: string, img: Image) {
  await pushManifest(t, repo, tag, img);
}

/** Every blob of an image or index. */
export function allBlobs(img: Image): Blob[] {
  return [...img.blobs, ...img.children.flatMap(allBlobs)];
}

/**
 * An OCI artifact manifest that refers to `subject` (a signature, an SBOM): an empty config, one
 * layer holding `content`, `artifactType`, and the `subject` descriptor.
 */
export function makeArtifact(subject: Image, artifactType: string, content: string): Image {
  const emptyConfig = blob(new TextEncoder().encode("{}") as Uint8Array<ArrayBuffer>, "application/vnd.oci.empty.v1+json");
  const layer = blob(new TextEncoder().encode(content) as Uint8Array<ArrayBuffer>, "application/vnd.example.signature.v1");
  const manifest = json({
    schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType,
    config: { mediaType: emptyConfig.mediaType, digest: emptyConfig.digest, size: emptyConfig.bytes.byteLength },
    layers: [{ mediaType: layer.mediaType, digest: layer.digest, size: layer.bytes.byteLength }],
    subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.manifest.byteLength },
  });
  return { mediaType: OCI_MANIFEST, manifest, digest: digestOf(manifest), blobs: [emptyConfig, layer], children: [] };
}

/** The referrers index the fallback tag scheme (`sha256-<hex>`) points at: one descriptor per artifact. */
export function makeReferrersIndex(artifacts: Array<{ img: Image; artifactType: string }>): Image {
  const manifest = json({
    schemaVersion: 2, mediaType: OCI_INDEX,
    manifests: artifacts.map((a) => ({ mediaType: a.img.mediaType, digest: a.img.digest, size: a.img.manifest.byteLength, artifactType: a.artifactType })),
  });
  return { mediaType: OCI_INDEX, manifest, digest: digestOf(manifest), blobs: [], children: [] };
}
