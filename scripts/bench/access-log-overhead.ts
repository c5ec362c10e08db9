// What the access log costs on the warm manifest path: the compiled binary with `accessLog: true`
// and `false` (and, with --baseline, another binary such as a build from before the access log),
// each logging to a file, serving one cached tag, measured with wrk in alternating rounds so
// machine noise hits all alike. Prints requests/s of each round, the medians and the changes.
// Usage: bun scripts/bench/access-log-overhead.ts [--rounds 5] [--duration 5] [--connections 32]
// [--baseline PATH]. Needs (Debian): docker-registry, wrk.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BINARY } from "../../test/helpers/binary.ts";
import { startDistribution } from "../../test/helpers/distribution.ts";
import { makeImage, pushImage } from "../../test/helpers/images.ts";
import { run } from "../../test/helpers/procs.ts";

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const baseline = process.argv.includes("--baseline") ? process.argv[process.argv.indexOf("--baseline") + 1] : undefined;
const ROUNDS = arg("rounds", 5);
const DURATION = arg("duration", 5);
const CONNECTIONS = arg("connections", 32);
const UP = "127.0.24.2";

async function wrk(url: string): Promise<number> {
  const r = await run(["wrk", "-t1", `-c${CONNECTIONS}`, `-d${DURATION}s`, "-H", "Accept: application/vnd.oci.image.manifest.v1+json", url]);
  const non2xx = r.stdout.match(/Non-2xx or 3xx responses: (\d+)/);
  if (non2xx) throw new Error(`${url}: ${non2xx[1]} error responses`);
  return Number(r.stdout.match(/Requests\/sec:\s+([\d.]+)/)![1]);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Starts `bin serve` on a kernel-chosen port, logging to `logFile`; resolves once it listens. */
async function start(bin: string, cfg: string, store: string, logFile: string) {
  const proc = Bun.spawn([bin, "--config-file", cfg, "--image-path", store, "--log-file", logFile, "serve", "--host", "127.0.0.1", "--port", "0", "--upstreams", "any"], { stdout: "ignore", stderr: "inherit" });
  for (let i = 0; i < 300; i++) {
    const port = (() => {
      try {
        return readFileSync(logFile, "utf8").match(/on port (\d+)/)?.[1];
      } catch {
        return undefined;
      }
    })();
    if (port) return { proc, url: `http://127.0.0.1:${port}` };
    await Bun.sleep(50);
  }
  proc.kill();
  throw new Error(`${bin} did not start`);
}

const dir = mkdtempSync(join(tmpdir(), "ocireg-bench-access-"));
const up = await startDistribution({ addr: `${UP}:80` });
await pushImage({ base: up.base }, "bench/app", "v1", makeImage());
const variants: Array<{ name: string; bin: string; accessLog: boolean }> = [
  { name: "accessLog: true ", bin: BINARY, accessLog: true },
  { name: "accessLog: false", bin: BINARY, accessLog: false },
  ...(baseline ? [{ name: "baseline        ", bin: baseline, accessLog: false }] : []),
];
const caches = await Promise.all(variants.map(async (v, i) => {
  const cfg = join(dir, `config-${i}.yml`);
  writeFileSync(cfg, `registries:\n  - name: ${UP}\n    scheme: http\nrevalidateAfter: 1h\n${v.bin === BINARY ? `accessLog: ${v.accessLog}\n` : ""}`);
  const logFile = join(dir, `log-${i}`);
  const c = await start(v.bin, cfg, join(dir, `store-${i}`), logFile);
  const url = `${c.url}/v2/${UP}/bench/app/manifests/v1`;
  if ((await fetch(url)).status !== 200) throw new Error("warm-up failed");
  return { ...v, ...c, logFile, rps: [] as number[] };
}));
try {
  for (let round = 0; round < ROUNDS; round++) {
    for (const x of round % 2 ? [...caches].reverse() : caches) x.rps.push(await wrk(x.url));
  }
  const [on, off] = caches.map((x) => median(x.rps));
  console.log(`warm manifest by tag, ${CONNECTIONS} connections, ${ROUNDS} rounds of ${DURATION} s, logs to a file`);
  for (const x of caches) console.log(`  ${x.name}: ${x.rps.map((r) => r.toFixed(0)).join(", ")} requests/s (median ${median(x.rps).toFixed(0)}); log ${(statSync(x.logFile).size / 1e6).toFixed(1)} MB`);
  console.log(`  change with the access log on: ${(((on! - off!) / off!) * 100).toFixed(1)}%`);
  if (baseline) console.log(`  accessLog: false against the baseline: ${(((off! - median(caches[2]!.rps)) / median(caches[2]!.rps)) * 100).toFixed(1)}%`);
} finally {
  for (const x of caches) x.proc.kill(), await x.proc.exited;
  await up.stop();
  rmSync(dir, { recursive: true, force: true });
}
