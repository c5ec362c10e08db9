// The S3 store's rows of the benchmark (cases/s3.ts) alone: a warm 64 MiB blob against a direct
// GET from Ceph RGW, and a cold skopeo pull into S3 against skopeo from the upstream.
// Usage: bun scripts/bench/s3.ts [--rounds 3] [--duration 8] [--up 127.0.41.2 (the upstream's address)].
// Needs Debian's radosgw, ceph-mon, ceph-osd, ceph-common, python3-rados, docker-registry, skopeo, wrk.
import { closeAll } from "./lib.ts";
import { resultsTable, type Ctx } from "./report.ts";
import { rgwInstalled, s3Store, S3_UP } from "./cases/s3.ts";

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : dflt;
};
if (!rgwInstalled()) {
  console.error("radosgw, ceph-mon and ceph-osd are needed: apt-get install radosgw ceph-mon ceph-osd ceph-common python3-rados");
  process.exit(2);
}
const started = performance.now();
const ctx: Ctx = {
  quick: false, seconds: Number(arg("duration", "8")), warmup: 0, rounds: Number(arg("rounds", "3")), scaling: [],
  log: (msg) => console.error(`[${((performance.now() - started) / 1000).toFixed(0).padStart(4)} s] ${msg}`),
};
try {
  const rows = await s3Store(ctx, arg("up", S3_UP));
  console.log(`S3 store against Ceph RGW, ${ctx.rounds} rounds (medians)\n${resultsTable(rows, true)}`);
  for (const r of rows) if (r.note) console.log(`${r.figure}: ${r.note}`);
} finally {
  await closeAll();
}
