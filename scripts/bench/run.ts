// One benchmark command: `npm run bench` (full, about 10–15 minutes on 2 cores) or
// `npm run bench -- --quick` (a smoke run under a minute). Every figure is measured against a
// baseline started in the same run (nginx, distribution, skopeo, or the cache itself alone), all
// on loopback; prints a table (figure, ours, baseline, ratio, target, met?) and a scaling table,
// and writes them as JSON (bench-results.json, or --json FILE). --only a,b runs some cases.
// Needs (Debian): nginx wrk hyperfine docker-registry skopeo curl, and `bun run build` first.
import { existsSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release, totalmem } from "node:os";
import { join } from "node:path";
import { BINARY } from "../../test/helpers/binary.ts";
import { closeAll } from "./lib.ts";
import { resultsTable, scalingTable, type Ctx, type Row } from "./report.ts";
import { warmBlob } from "./cases/warm-blob.ts";
import { warmManifest } from "./cases/warm-manifest.ts";
import { coldPull } from "./cases/cold-pull.ts";
import { coldHerd } from "./cases/cold-herd.ts";
import { storeScale } from "./cases/store-scale.ts";
import { eviction } from "./cases/eviction.ts";
import { load } from "./cases/load.ts";
import { soak } from "./cases/soak.ts";
import { s3Store } from "./cases/s3.ts";

const argv = process.argv.slice(2);
const opt = (name: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
};
const quick = argv.includes("--quick");
const jsonFile = opt("json") ?? "bench-results.json";
const only = opt("only")?.split(",");

const CASES: Array<[string, (ctx: Ctx) => Promise<Row[]>]> = [
  ["warm-blob", warmBlob],
  ["warm-manifest", warmManifest],
  ["cold-pull", coldPull],
  ["cold-herd", coldHerd],
  ["store-scale", storeScale],
  ["eviction", eviction],
  ["load", load],
  ["soak", soak],
  // Runs when radosgw is installed (skipped otherwise).
  ["s3", s3Store],
];

const TOOLS: Record<string, string> = { nginx: "nginx", wrk: "wrk", hyperfine: "hyperfine", "docker-registry": "docker-registry", skopeo: "skopeo", curl: "curl" };
const missing = Object.keys(TOOLS).filter((t) => !Bun.which(t) && !Bun.which(t, { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" }));
if (missing.length) {
  console.error(`missing: ${missing.join(", ")}. Install them (as root): apt-get install nginx wrk hyperfine docker-registry skopeo curl`);
  process.exit(2);
}
if (process.getuid?.() !== 0) console.error("warning: not root; nginx as a baseline expects root (`user root;`)");
if (!existsSync(BINARY)) {
  console.error(`${BINARY} is missing: run \`bun run build\` first`);
  process.exit(2);
}
const newestSource = (dir: string): number => Math.max(...readdirSync(dir, { recursive: true }).map((f) => statSync(join(dir, String(f))).mtimeMs));
if (newestSource(join(import.meta.dir, "../../src")) > statSync(BINARY).mtimeMs) {
  console.error("warning: src/ changed after dist/ociregistry was built; run `bun run build` to measure the current code");
}

const ctx: Ctx = {
  quick, seconds: quick ? 1 : 5, warmup: quick ? 0 : 2, rounds: quick ? 1 : 3, scaling: [],
  log: (msg) => console.error(`[${((performance.now() - started) / 1000).toFixed(0).padStart(4)} s] ${msg}`),
};
const started = performance.now();
// Other work on the machine skews every figure: the load average before and after says how quiet it was.
const loadBefore = loadavg()[0]!;
const rows: Row[] = [];
const errors: string[] = [];
try {
  for (const [name, fn] of CASES) {
    if (only && !only.includes(name)) continue;
    ctx.log(`case ${name}`);
    try {
      rows.push(...(await fn(ctx)));
    } catch (err) {
      errors.push(`${name}: ${(err as Error).message}`);
      ctx.log(`case ${name} FAILED: ${(err as Error).message}`);
    }
  }
} finally {
  await closeAll();
}
const elapsed = (performance.now() - started) / 1000;
const machine = `${cpus().length} × ${cpus()[0]?.model ?? "?"}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${release()}, bun ${Bun.version}`;
const loadNote = `1-minute load average ${loadBefore.toFixed(1)} before, ${loadavg()[0]!.toFixed(1)} after`;
console.log(`\nociregistry benchmark${quick ? " (--quick: short runs, small stores; not for publishing)" : ""}, ${new Date().toISOString().slice(0, 10)}, ${machine}`);
console.log(`every baseline measured in this run; ratio = ours / baseline; ${elapsed.toFixed(0)} s in all; ${loadNote}\n`);
console.log(resultsTable(rows));
if (ctx.scaling.length) console.log(`\nscaling with the store size\n${scalingTable(ctx.scaling)}`);
for (const e of errors) console.log(`\nFAILED ${e}`);
writeFileSync(jsonFile, JSON.stringify({
  date: new Date().toISOString(), machine, load: loadNote, quick, elapsedSeconds: Math.round(elapsed), rows, scaling: ctx.scaling, errors,
  markdown: { results: resultsTable(rows, true), scaling: scalingTable(ctx.scaling, true) },
}, null, 2) + "\n");
console.log(`\nwrote ${jsonFile}`);
process.exit(errors.length ? 1 : 0);
