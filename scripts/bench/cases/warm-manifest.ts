// Warm manifest GETs by tag and by digest at 64 connections, against nginx sending the same bytes
// (the cache's own store file) and distribution serving the same image (it is also the cache's
// upstream); then the peak RSS of the cache and of distribution under that load.
import { makeImage, pushImage } from "../../../test/helpers/images.ts";
import { memory, Scope, startBenchCache, startNginx, startRegistry, wrk, wrkRounds } from "../lib.ts";
import { atLeast, type Ctx, type Row } from "../report.ts";

const UP = "127.0.4.3";
const ACCEPT = { Accept: "application/vnd.oci.image.manifest.v1+json" };

export async function warmManifest(ctx: Ctx): Promise<Row[]> {
  const s = new Scope();
  try {
    const dist = await startRegistry(s, UP);
    const img = makeImage();
    await pushImage({ base: dist.base }, "bench/app", "v1", img);
    const cache = await startBenchCache(s, { upstreams: [UP] });
    const nginx = await startNginx(s, cache.store);
    const rows: Row[] = [];
    const peak = { ours: 0, distribution: 0 };
    for (const [how, ref] of [["tag", "v1"], ["digest", img.digest]] as const) {
      const urls = {
        ours: `${cache.url}/v2/${UP}/bench/app/manifests/${ref}`,
        nginx: `${nginx.url}/manifests/sha256/${img.digest.slice(7)}`,
        distribution: `${dist.base}/v2/bench/app/manifests/${ref}`,
      };
      for (const url of Object.values(urls)) {
        const res = await fetch(url, { headers: ACCEPT });
        const body = new Uint8Array(await res.arrayBuffer());
        if (res.status !== 200 || Buffer.compare(body, img.manifest) !== 0) throw new Error(`${url}: ${res.status}, not the manifest's bytes`);
      }
      const run = (url: string, seconds = ctx.seconds) => () => wrk(url, { connections: 64, seconds, headers: ACCEPT });
      ctx.log(`warm manifest by ${how}, 64 connections: ${ctx.warmup ? "warm-up, then " : ""}${ctx.rounds} round(s)`);
      if (ctx.warmup) for (const url of Object.values(urls)) await run(url, ctx.warmup)();
      const r = await wrkRounds(ctx.rounds, { ours: run(urls.ours), nginx: run(urls.nginx), distribution: run(urls.distribution) });
      rows.push(atLeast(`warm manifest by ${how}, 64 connections`, "req/s", r.ours!.rps, r.nginx!.rps, "nginx", 0.9));
      rows.push(atLeast(`warm manifest by ${how}, 64 connections`, "req/s", r.ours!.rps, r.distribution!.rps, "distribution", 20));
      peak.ours = memory(cache.proc.pid).hwm;
      peak.distribution = memory(dist.proc.pid).hwm;
    }
    rows.push({
      figure: "RSS peak under the 64-connection manifest tests", unit: "MiB", ours: peak.ours, baseline: peak.distribution,
      baselineName: "distribution", ratio: peak.ours / peak.distribution, target: "≤ 128 MiB and < distribution",
      met: peak.ours <= 128 && peak.ours < peak.distribution, note: "VmHWM of each process, which served only these tests",
    });
    return rows;
  } finally {
    await s.close();
  }
}
