// 32 clients (curl) asking a fresh cache for one cold 64 MiB blob at once, against nginx sending
// the same blob, once stored, to 32 clients at once (the bytes this machine can push to them):
// the wall time of each, and how many times the upstream (distribution, counted in its access
// log) was asked for the blob. One client alone on a fresh cache is noted beside them.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { makeImage, pushImage } from "../../../test/helpers/images.ts";
import { median, MiB, Scope, sh, startBenchCache, startNginx, startRegistry, timed } from "../lib.ts";
import { atMost, type Ctx, type Row } from "../report.ts";

const UP = "127.0.4.5";
const CLIENTS = 32;

export async function coldHerd(ctx: Ctx): Promise<Row[]> {
  const s = new Scope();
  try {
    const up = await startRegistry(s, UP, { accessLog: true });
    const mib = ctx.quick ? 16 : 64;
    const img = makeImage({ content: mib * MiB - 1536, uncompressed: true });
    const layer = img.blobs[1]!;
    await pushImage({ base: up.base }, "bench/herd", "v1", img);
    const path = `/v2/bench/herd/blobs/${layer.digest}`;
    const fetches = () => up.requests().filter((r) => r === `GET ${path}`).length;
    await sh(["curl", "-sf", "-o", "/dev/null", `${up.base}${path}`]); // the upstream's file in the page cache
    const curl = async (url: string) => {
      const r = await sh(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", url]);
      if (r.stdout !== `200 ${layer.bytes.byteLength}`) throw new Error(`${url}: ${r.stdout} (want 200 ${layer.bytes.byteLength})`);
    };
    const all = (url: string) => Promise.all(Array.from({ length: CLIENTS }, () => curl(url)));
    const withCache = async <T>(fn: (url: string, store: string) => Promise<T>) => {
      const rs = new Scope();
      try {
        const cache = await startBenchCache(rs, { upstreams: [UP] });
        return await fn(`${cache.url}/v2/${UP}/bench/herd/blobs/${layer.digest}`, cache.store);
      } finally {
        await rs.close();
      }
    };
    // The baseline's file: the blob as the cache stored it, in a directory nginx serves.
    const served = s.tempDir("ocireg-bench-herd-");
    const file = `blobs/sha256/${layer.digest.slice(7)}`;
    await withCache(async (url, store) => {
      await curl(url);
      // The cache answers the last byte once verified; the file lands once fsynced and renamed.
      for (let i = 0; i < 200 && !existsSync(join(store, file)); i++) await Bun.sleep(50);
      await sh(["mkdir", "-p", join(served, "blobs/sha256")]);
      await sh(["cp", join(store, file), join(served, file)]);
    });
    const nginx = `${(await startNginx(s, served)).url}/${file}`;
    await all(nginx); // nginx's worker and the file in the page cache, as the cache's upstream file is
    ctx.log(`${CLIENTS} clients on one cold ${mib} MiB blob: ${ctx.rounds} round(s)`);
    const one: number[] = [];
    const herd: number[] = [];
    const baseline: number[] = [];
    const upstreamFetches: number[] = [];
    for (let r = 0; r < ctx.rounds; r++) {
      one.push(await withCache((url) => timed(() => curl(url))));
      const cold = async () => {
        const before = fetches();
        herd.push(await withCache((url) => timed(() => all(url))));
        upstreamFetches.push(fetches() - before);
      };
      const stored = async () => baseline.push(await timed(() => all(nginx)));
      for (const f of r % 2 ? [stored, cold] : [cold, stored]) await f();
    }
    const most = Math.max(...upstreamFetches);
    return [
      {
        figure: `${CLIENTS} clients on one cold ${mib} MiB blob: upstream fetches`, unit: "", ours: most, target: "1 upstream fetch", met: most === 1,
        note: `GETs of the blob in distribution's access log, per round: ${upstreamFetches.join(", ")}`,
      },
      atMost(`${CLIENTS} clients on one cold ${mib} MiB blob: wall time`, "s", median(herd), median(baseline), `nginx, ${CLIENTS} clients on the stored blob`, 1.3,
        `rounds: cold through the cache ${herd.map((t) => t.toFixed(2)).join(", ")} s; nginx ${baseline.map((t) => t.toFixed(2)).join(", ")} s; one client alone on a cold cache ${one.map((t) => t.toFixed(2)).join(", ")} s`),
    ];
  } finally {
    await s.close();
  }
}
