// Reload without restart, on the compiled binary over TLS with basic auth: the serving certificate
// and the htpasswd file rotated while a large download runs (it completes with the right bytes; a
// new TLS connection sees the new certificate; the old password stops working, the new one works),
// a broken config refused with one line while the old one keeps working, a restart-only key
// warned about, and a rotated upstream password taking effect for the next upstream request.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { BINARY, requireBinary } from "../helpers/binary.ts";
import { skopeoCopy } from "../helpers/clients.ts";
import { startDistribution, type Distribution } from "../helpers/distribution.ts";
import { startFaultProxy, type FaultProxy } from "../helpers/fault-proxy.ts";
import { makeImage, pushImage } from "../helpers/images.ts";
import { makePki, type Pki } from "../helpers/pki.ts";
import { run, stopProcess, track, waitFor } from "../helpers/procs.ts";

const CACHE = "127.0.25.10";
const PORT = 8443;
const UPSTREAM = "127.0.25.11";
const PROXY = "127.0.25.12";
const TOKEN = "reload-admin-token-0123456789";
const big = makeImage({ content: 8 * 1024 * 1024, uncompressed: true });
const bigLayer = big.blobs[1]!;
const small = makeImage({ content: 1000 });
const later = makeImage({ content: 2000 });

let dir: string;
let first: Pki;
let second: Pki;
let up: Distribution;
let proxy: FaultProxy;
let proc: Subprocess;
let out = "";
const base = `https://${CACHE}:${PORT}`;
const file = (f: string) => join(dir, f);

function writeConfig(extra = "", upstreamPassword = "one") {
  writeFileSync(file("config.yml"), `host: ${CACHE}
port: ${PORT}
imagePath: ${file("store")}
upstreams: any
shutdownDelay: 0s
serverTlsConfig: { cert: ${file("tls.crt")}, key: ${file("tls.key")} }
htpasswd: ${file("users.htpasswd")}
admin: { token: ${TOKEN} }
registries:
  - { name: "${UPSTREAM}", scheme: http, auth: { user: alice, password: ${upstreamPassword} } }
  - { name: "${PROXY}", scheme: http, auth: { user: alice, password: ${upstreamPassword} } }
${extra}`);
}

function useCert(p: Pki) {
  copyFileSync(p.serverCert, file("tls.crt"));
  copyFileSync(p.serverKey, file("tls.key"));
}

/** The SHA-256 fingerprint of the certificate a new TLS connection is shown. */
async function fingerprint(): Promise<string> {
  const r = await run(["sh", "-c", `openssl s_client -connect ${CACHE}:${PORT} </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256`]);
  return r.stdout.trim();
}
async function fingerprintOf(cert: string): Promise<string> {
  return (await run(["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", cert])).stdout.trim();
}

const auth = (user: string, password: string) => ({ Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}` });
/** A fresh connection each time (keepalive off), trusting the CA given. */
const get = (path: string, user: string, password: string, ca: Pki) =>
  fetch(`${base}${path}`, { headers: auth(user, password), tls: { ca: readFileSync(ca.ca, "utf8") }, keepalive: false } as RequestInit);

async function sighup() {
  // Access lines of earlier requests are written within 20 ms (batched): let them land first.
  await Bun.sleep(100);
  const before = out.length;
  proc.kill("SIGHUP");
  await waitFor("the reload to be logged", async () => /reload \(SIGHUP\)/.test(out.slice(before)), 5000);
  await Bun.sleep(100);
  return out.slice(before);
}

/** skopeo over TLS verified against `ca`, with basic auth. */
function pull(ref: string, ca: Pki, creds: string) {
  const certDir = mkdtempSync(join(dir, "certs-"));
  copyFileSync(ca.ca, join(certDir, "ca.crt"));
  return skopeoCopy(`${CACHE}:${PORT}/${ref}`, { tlsVerify: true, extra: ["--src-cert-dir", certDir, "--src-creds", creds] });
}

beforeAll(async () => {
  requireBinary();
  dir = mkdtempSync(join(tmpdir(), "ocireg-reload-"));
  mkdirSync(file("store"));
  [first, second] = [await makePki([CACHE]), await makePki([CACHE])];
  await run(["sh", "-c", `htpasswd -Bbn alice one > ${file("upstream.htpasswd")}`]);
  up = await startDistribution({ addr: `${UPSTREAM}:80`, extraYaml: `auth:\n  htpasswd:\n    realm: r\n    path: ${file("upstream.htpasswd")}\n` });
  const creds = { user: "alice", password: "one" };
  await pushImage({ base: up.base, credentials: creds }, "big", "v1", big);
  await pushImage({ base: up.base, credentials: creds }, "small", "v1", small);
  await pushImage({ base: up.base, credentials: creds }, "later", "v1", later);
  proxy = await startFaultProxy({ hostname: PROXY, port: 80, target: up.base });
  useCert(first);
  await run(["sh", "-c", `htpasswd -Bbn olduser oldpass > ${file("users.htpasswd")}`]);
  writeConfig();
  proc = track(Bun.spawn([BINARY, "--config-file", file("config.yml"), "serve"], { stdout: "pipe", stderr: "pipe" }));
  for (const s of [proc.stdout, proc.stderr] as ReadableStream<Uint8Array>[]) void (async () => {
    for await (const c of s) out += new TextDecoder().decode(c);
  })();
  await waitFor("the cache to listen", async () => /on port 8443/.test(out), 15_000);
}, 120_000);

afterAll(async () => {
  if (proc) await stopProcess(proc);
  await proxy?.stop();
  await up?.stop();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe("reload", () => {
  test("certificate and htpasswd rotated during a large download: it completes, new connections see the new certificate, only the new password works", async () => {
    expect(await fingerprint()).toBe(await fingerprintOf(first.serverCert));
    // 8 MiB at 1 MiB/s: the download runs for about 8 s, across the reload.
    proxy.faults = { throttle: 1024 * 1024 };
    const download = get(`/v2/${PROXY}/big/blobs/${bigLayer.digest}`, "olduser", "oldpass", first).then(async (res) => {
      expect(res.status).toBe(200);
      const h = new Bun.CryptoHasher("sha256");
      for await (const c of res.body!) h.update(c);
      return `sha256:${h.digest("hex")}`;
    });
    await waitFor("the download to start", async () => proxy.log.some((l) => l.startsWith(`GET /v2/big/blobs/${bigLayer.digest}`)), 15_000);
    await Bun.sleep(500);

    useCert(second);
    await run(["sh", "-c", `htpasswd -Bbn newuser newpass > ${file("users.htpasswd")}`]);
    const logged = await sighup();
    expect(logged).toContain("reload (SIGHUP): applied serverTlsConfig, users");
    expect(logged).not.toContain("after a restart");

    expect(await fingerprint()).toBe(await fingerprintOf(second.serverCert));
    expect((await get("/v2/", "olduser", "oldpass", second)).status).toBe(401);
    expect((await get("/v2/", "newuser", "newpass", second)).status).toBe(200);
    // The old certificate is no longer what a client that trusts only its CA can connect to.
    expect(await get("/v2/", "newuser", "newpass", first).then(() => "connected", () => "refused")).toBe("refused");
    expect(await download).toBe(bigLayer.digest);
    proxy.faults = {};
    // A real client verifying the new certificate, with the new password.
    const r = await pull(`${UPSTREAM}/small:v1`, second, "newuser:newpass");
    expect(r.digest).toBe(small.digest);
    r.cleanup();
    await expect(pull(`${UPSTREAM}/small:v1`, second, "olduser:oldpass")).rejects.toThrow(/401|unauthorized|authentication/i);
  }, 90_000);

  test("a broken config is refused with one error line and the running config keeps working; the admin API says why with a 400", async () => {
    writeFileSync(file("config.yml"), readFileSync(file("config.yml"), "utf8") + "logLevel: loud\n");
    const logged = await sighup();
    const lines = logged.split("\n").filter((l) => l.trim());
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/reload \(SIGHUP\) refused, the running config stays: logLevel: must be one of error, warn, info, debug, trace/);
    expect((await get("/v2/", "newuser", "newpass", second)).status).toBe(200);
    expect(await fingerprint()).toBe(await fingerprintOf(second.serverCert));

    const api = await fetch(`${base}/api/v1/reload`, { method: "POST", headers: { Authorization: `Bearer ${TOKEN}` }, tls: { ca: readFileSync(second.ca, "utf8") } } as RequestInit);
    expect(api.status).toBe(400);
    expect(((await api.json()) as { error: string }).error).toMatch(/^logLevel: must be one of/);
    writeConfig();
  });

  test("changing port is named as needing a restart; the cache keeps its port", async () => {
    writeFileSync(file("config.yml"), readFileSync(file("config.yml"), "utf8").replace(`port: ${PORT}`, "port: 9443"));
    const logged = await sighup();
    expect(logged).toMatch(/reload \(SIGHUP\): port changed and take effect only after a restart/);
    expect((await get("/v2/", "newuser", "newpass", second)).status).toBe(200);
    writeConfig();
    const api = await fetch(`${base}/api/v1/reload`, { method: "POST", headers: { Authorization: `Bearer ${TOKEN}` }, tls: { ca: readFileSync(second.ca, "utf8") } } as RequestInit);
    expect(api.status).toBe(200);
    expect(await api.json()).toEqual({ applied: [], restart: [] });
  });

  test("a rotated upstream password takes effect for the next upstream request", async () => {
    await run(["sh", "-c", `htpasswd -Bbn alice two > ${file("upstream.htpasswd")}`]);
    // distribution reads its htpasswd file at start.
    await up.stop();
    await up.restart();
    const refused = await get(`/v2/${UPSTREAM}/later/manifests/v1`, "newuser", "newpass", second);
    expect(refused.status).not.toBe(200);
    expect(await refused.text()).toContain("refused the configured credentials");

    writeConfig("", "two");
    const api = await fetch(`${base}/api/v1/reload`, { method: "POST", headers: { Authorization: `Bearer ${TOKEN}` }, tls: { ca: readFileSync(second.ca, "utf8") } } as RequestInit);
    expect(api.status).toBe(200);
    expect(await api.json()).toEqual({ applied: ["registries"], restart: [] });
    const r = await pull(`${UPSTREAM}/later:v1`, second, "newuser:newpass");
    expect(r.digest).toBe(later.digest);
    r.cleanup();
  }, 60_000);
});
