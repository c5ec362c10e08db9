// Hot-path benchmark: warm manifests and blobs from the compiled binary, against nginx serving
// the same bytes as static files and distribution serving them as a registry, all measured in
// this run with wrk. Prints requests/s and the ratio to each baseline, then memory with 10,000
// cached tags. Usage: bun scripts/bench/hotpath.ts [--duration 5] [--connections 32]
// Needs (Debian): docker-registry, nginx, wrk.
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BINARY, startCache } from "../../test/helpers/binary.ts";
import { startDistribution } from "../../test/helpers/distribution.ts";
import { makeImage, pushImage } from "../../test/helpers/images.ts";
import { run } from "../../test/helpers/procs.ts";
import { createFsStore } from "../../src/store/fs.ts";
import { digestOf } from "../../src/oci/digest.ts";

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const DURATION = arg("duration", 5);
const CONNECTIONS = arg("connections", 32);
const UP = "127.0.0.20";
const NGINX_PORT = 18080;

async function wrk(url: string): Promise<number> {
  // distribution answers OCI manifests only to clients that accept them.
  const r = await run(["wrk", "-t1", `-c${CONNECTIONS}`, `-d${DURATION}s`, "-H", "Accept: application/vnd.oci.image.manifest.v1+json", url]);
  const non2xx = r.stdout.match(/Non-2xx or 3xx responses: (\d+)/);
  if (non2xx) throw new Error(`${url}: ${non2xx[1]} error responses; a fast error is not a fast registry`);
  return Number(r.stdout.match(/Requests\/sec:\s+([\d.]+)/)![1]);
}

function memory(pid: number) {
  const status = require("node:fs").readFileSync(`/proc/${pid}/status`, "utf8") as string;
  const kb = (k: string) => Number(status.match(new RegExp(`${k}:\\s+(\\d+)`))![1]);
  return { rssMiB: kb("VmRSS") / 1024, peakMiB: kb("VmHWM") / 1024 };
}

const dir = mkdtempSync(join(tmpdir(), "ocireg-bench-"));
const up = await startDistribution({ addr: `${UP}:80` });
const img = makeImage({ content: 1024 * 1024, uncompressed: true });
await pushImage({ base: up.base }, "bench/app", "v1", img);
const layer = img.blobs[1]!;

const store = join(dir, "store");
const cfg = join(dir, "config.yml");
writeFileSync(cfg, `registries:\n  - name: ${UP}\n    scheme: http\nrevalidateAfter: 1h\n`);
const cache = await startCache(["--config-file", cfg, "--image-path", store]);

// nginx serving the same manifest and blob bytes as plain files.
const www = join(dir, "www");
mkdirSync(www);
writeFileSync(join(www, "manifest.json"), img.manifest);
writeFileSync(join(www, "blob"), layer.bytes);
writeFileSync(join(dir, "nginx.conf"), `user root; worker_processes 1; daemon off; pid ${dir}/nginx.pid; error_log ${dir}/nginx.err;
events { worker_connections 1024; }
http { access_log off; sendfile on; server { listen 127.0.0.1:${NGINX_PORT}; root ${www}; } }\n`);
const nginx = Bun.spawn(["nginx", "-c", join(dir, "nginx.conf")], { stdout: "ignore", stderr: "ignore" });
await Bun.sleep(500);

const results: string[] = [];
try {
  const ours = `${cache.url}/v2/${UP}/bench/app`;
  await fetch(`${ours}/manifests/v1`).then((r) => r.arrayBuffer());
  await fetch(`${ours}/blobs/${layer.digest}`).then((r) => r.arrayBuffer());
  const cases: Array<[string, string, string, string]> = [
    ["manifest by tag", `${ours}/manifests/v1`, `http://127.0.0.1:${NGINX_PORT}/manifest.json`, `${up.base}/v2/bench/app/manifests/v1`],
    ["manifest by digest", `${ours}/manifests/${img.digest}`, `http://127.0.0.1:${NGINX_PORT}/manifest.json`, `${up.base}/v2/bench/app/manifests/${img.digest}`],
    ["1 MiB blob", `${ours}/blobs/${layer.digest}`, `http://127.0.0.1:${NGINX_PORT}/blob`, `${up.base}/v2/bench/app/blobs/${layer.digest}`],
  ];
  results.push(`wrk -t1 -c${CONNECTIONS} -d${DURATION}s, all servers on this machine, measured in this run`);
  results.push(`${"case".padEnd(20)} ${"ociregistry".padStart(12)} ${"nginx".padStart(10)} ${"distribution".padStart(13)}  ratio vs nginx / vs distribution`);
  for (const [name, a, b, c] of cases) {
    const [x, y, z] = [await wrk(a), await wrk(b), await wrk(c)];
    results.push(`${name.padEnd(20)} ${x.toFixed(0).padStart(12)} ${y.toFixed(0).padStart(10)} ${z.toFixed(0).padStart(13)}  ${(x / y).toFixed(2)} / ${(x / z).toFixed(2)}`);
  }
  const m = memory(cache.proc.pid);
  results.push(`memory after the load above: RSS ${m.rssMiB.toFixed(1)} MiB, peak ${m.peakMiB.toFixed(1)} MiB`);
} finally {
  nginx.kill();
  await cache.stop();
  await up.stop();
}

// Memory with 10,000 cached tags, each pulled once (manifests kept in memory).
const big = join(dir, "store10k");
const s = createFsStore(big);
await s.init();
const now = new Date().toISOString();
for (let i = 0; i < 10_000; i++) {
  const m = new TextEncoder().encode(JSON.stringify({
    schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: layer.digest, size: 1 },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: layer.digest, size: 1 }],
    annotations: { n: String(i), filler: "x".repeat(1500) },
  }));
  const d = digestOf(m);
  await s.writeManifest(d, m);
  await s.writeTag({ upstream: "docker.io", repository: `team/app${i}`, tag: "v1", digest: d, mediaType: "application/vnd.oci.image.manifest.v1+json", size: m.byteLength, created: now, lastPulled: now, checked: now });
}
const gapped = await startCache(["--image-path", big, "--air-gapped"]);
try {
  const before = memory(gapped.proc.pid);
  for (let i = 0; i < 10_000; i += 100) {
    await Promise.all(Array.from({ length: 100 }, (_, j) => fetch(`${gapped.url}/v2/team/app${i + j}/manifests/v1`).then((r) => {
      if (r.status !== 200) throw new Error(`tag ${i + j}: HTTP ${r.status}`);
      return r.arrayBuffer();
    })));
  }
  const tagsRps = await wrk(`${gapped.url}/v2/team/app5000/manifests/v1`);
  const after = memory(gapped.proc.pid);
  results.push(`10,000 cached tags (1.6 KiB manifests) all pulled: RSS ${before.rssMiB.toFixed(1)} MiB idle -> ${after.rssMiB.toFixed(1)} MiB, peak ${after.peakMiB.toFixed(1)} MiB; one of them at ${tagsRps.toFixed(0)} req/s`);
} finally {
  await gapped.stop();
  await run(["rm", "-rf", dir]);
}
console.log(results.join("\n"));
void BINARY;
