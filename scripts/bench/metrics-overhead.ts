// What metrics cost on the warm manifest path: the same binary with `metrics: true` and with
// `metrics: false` (no instrumentation at all), serving one cached tag, measured with wrk in
// alternating rounds in one run so machine noise hits both alike. Prints requests/s of each
// round, the medians and the change. Usage: bun scripts/bench/metrics-overhead.ts [--rounds 5]
// [--duration 5] [--connections 64]. Needs (Debian): docker-registry, wrk.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startCache } from "../../test/helpers/binary.ts";
import { startDistribution } from "../../test/helpers/distribution.ts";
import { makeImage, pushImage } from "../../test/helpers/images.ts";
import { run } from "../../test/helpers/procs.ts";

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const ROUNDS = arg("rounds", 5);
const DURATION = arg("duration", 5);
const CONNECTIONS = arg("connections", 64);
const UP = "127.0.0.19";

async function wrk(url: string): Promise<number> {
  const r = await run(["wrk", "-t1", `-c${CONNECTIONS}`, `-d${DURATION}s`, url]);
  const non2xx = r.stdout.match(/Non-2xx or 3xx responses: (\d+)/);
  if (non2xx) throw new Error(`${url}: ${non2xx[1]} error responses`);
  return Number(r.stdout.match(/Requests\/sec:\s+([\d.]+)/)![1]);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const dir = mkdtempSync(join(tmpdir(), "ocireg-bench-metrics-"));
const up = await startDistribution({ addr: `${UP}:80` });
await pushImage({ base: up.base }, "bench/app", "v1", makeImage());
const caches = await Promise.all([true, false].map(async (on) => {
  const cfg = join(dir, `config-${on}.yml`);
  writeFileSync(cfg, `registries:\n  - name: ${UP}\n    scheme: http\nrevalidateAfter: 1h\nmetrics: ${on}\n`);
  const c = await startCache(["--config-file", cfg, "--image-path", join(dir, `store-${on}`)]);
  const url = `${c.url}/v2/${UP}/bench/app/manifests/v1`;
  if ((await fetch(url)).status !== 200) throw new Error("warm-up failed");
  return { on, c, url, rps: [] as number[] };
}));
try {
  for (let round = 0; round < ROUNDS; round++) {
    for (const x of round % 2 ? [...caches].reverse() : caches) x.rps.push(await wrk(x.url));
  }
  const [on, off] = caches.map((x) => median(x.rps));
  console.log(`warm manifest by tag, ${CONNECTIONS} connections, ${ROUNDS} rounds of ${DURATION} s`);
  for (const x of caches) console.log(`  metrics ${x.on ? "on " : "off"}: ${x.rps.map((r) => r.toFixed(0)).join(", ")} requests/s (median ${median(x.rps).toFixed(0)})`);
  console.log(`  change with metrics on: ${(((on! - off!) / off!) * 100).toFixed(1)}%`);
} finally {
  for (const x of caches) await x.c.stop();
  await up.stop();
}
