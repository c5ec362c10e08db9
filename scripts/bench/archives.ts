// A warm 64 MiB blob served straight out of an .oci archive (a byte range of the archive file)
// against the same blob served from the store (a file of its own), by one cache process, measured
// with wrk in alternating rounds in one run. Prints requests/s and MiB/s of each round, the
// medians, the ratio, and the cache's memory. Usage: bun scripts/bench/archives.ts [--rounds 3]
// [--duration 5] [--connections 4]. Needs (Debian): wrk.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startCache } from "../../test/helpers/binary.ts";
import { makeImage } from "../../test/helpers/images.ts";
import { ociArchive } from "../../test/helpers/oci-archive.ts";
import { run } from "../../test/helpers/procs.ts";

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const ROUNDS = arg("rounds", 3);
const DURATION = arg("duration", 5);
const CONNECTIONS = arg("connections", 4);

async function wrk(url: string): Promise<number> {
  const r = await run(["wrk", "-t1", `-c${CONNECTIONS}`, `-d${DURATION}s`, url]);
  const non2xx = r.stdout.match(/Non-2xx or 3xx responses: (\d+)/);
  if (non2xx) throw new Error(`${url}: ${non2xx[1]} error responses; a fast error is not a fast registry`);
  return Number(r.stdout.match(/Requests\/sec:\s+([\d.]+)/)![1]);
}

function memory(pid: number) {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (k: string) => Number(status.match(new RegExp(`${k}:\\s+(\\d+)`))![1]);
  return { rssMiB: kb("VmRSS") / 1024, peakMiB: kb("VmHWM") / 1024 };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const dir = mkdtempSync(join(tmpdir(), "ocireg-bench-archives-"));
const img = makeImage({ content: 64 * 1024 * 1024, uncompressed: true });
const layer = img.blobs[1]!;
mkdirSync(join(dir, "archives/bench"), { recursive: true });
writeFileSync(join(dir, "archives/bench/archived.oci"), ociArchive([{ image: img }]));
// The store's layout: a blob is a file named by its digest.
mkdirSync(join(dir, "store/blobs/sha256"), { recursive: true });
writeFileSync(join(dir, "store/blobs/sha256", layer.digest.slice(7)), layer.bytes);

const cache = await startCache(["--image-path", join(dir, "store"), "--archives", join(dir, "archives"), "--air-gapped"]);
const cases = [
  { name: "from the archive", url: `${cache.url}/v2/bench/archived/blobs/${layer.digest}`, rps: [] as number[] },
  { name: "from the store", url: `${cache.url}/v2/bench/stored/blobs/${layer.digest}`, rps: [] as number[] },
];
try {
  for (const c of cases) {
    const bytes = new Uint8Array(await (await fetch(c.url)).arrayBuffer());
    if (Bun.hash(bytes) !== Bun.hash(layer.bytes)) throw new Error(`${c.name}: wrong bytes`);
  }
  for (let round = 0; round < ROUNDS; round++) {
    for (const c of round % 2 ? [...cases].reverse() : cases) c.rps.push(await wrk(c.url));
  }
  const mib = layer.bytes.byteLength / 1024 / 1024;
  console.log(`warm ${mib.toFixed(0)} MiB blob, wrk -t1 -c${CONNECTIONS} -d${DURATION}s, ${ROUNDS} alternating rounds, one cache process`);
  for (const c of cases) {
    console.log(`  ${c.name.padEnd(17)} ${c.rps.map((r) => r.toFixed(1)).join(", ")} req/s (median ${median(c.rps).toFixed(1)} req/s, ${(median(c.rps) * mib).toFixed(0)} MiB/s)`);
  }
  console.log(`  archive / store: ${(median(cases[0]!.rps) / median(cases[1]!.rps)).toFixed(2)}`);
  const m = memory(cache.proc.pid);
  console.log(`  cache memory after the runs: RSS ${m.rssMiB.toFixed(1)} MiB, peak ${m.peakMiB.toFixed(1)} MiB`);
} finally {
  await cache.stop();
  rmSync(dir, { recursive: true, force: true });
}
