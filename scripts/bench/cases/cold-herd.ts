// 32 clients (curl) asking a fresh cache for one cold 64 MiB blob at once, against one client
// alone on another fresh cache: the wall time of each, and how many times the upstream
// (distribution, counted in its access log) was asked for the blob.
import { makeImage, pushImage } from "../../../test/helpers/images.ts";
import { median, MiB, Scope, sh, startBenchCache, startRegistry, timed } from "../lib.ts";
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
    const withCache = async <T>(fn: (url: string) => Promise<T>) => {
      const rs = new Scope();
      try {
        const cache = await startBenchCache(rs, { upstreams: [UP] });
        return await fn(`${cache.url}/v2/${UP}/bench/herd/blobs/${layer.digest}`);
      } finally {
        await rs.close();
      }
    };
    ctx.log(`${CLIENTS} clients on one cold ${mib} MiB blob: ${ctx.rounds} round(s)`);
    const one: number[] = [];
    const herd: number[] = [];
    const upstreamFetches: number[] = [];
    for (let r = 0; r < ctx.rounds; r++) {
      one.push(await withCache((url) => timed(() => curl(url))));
      const before = fetches();
      herd.push(await withCache((url) => timed(() => Promise.all(Array.from({ length: CLIENTS }, () => curl(url))))));
      upstreamFetches.push(fetches() - before);
    }
    const most = Math.max(...upstreamFetches);
    return [
      {
        figure: `${CLIENTS} clients on one cold ${mib} MiB blob: upstream fetches`, unit: "", ours: most, target: "1 upstream fetch", met: most === 1,
        note: `GETs of the blob in distribution's access log, per round: ${upstreamFetches.join(", ")}`,
      },
      atMost(`${CLIENTS} clients on one cold ${mib} MiB blob: wall time`, "s", median(herd), median(one), "one client alone", 1.3,
        `rounds: ${CLIENTS} clients ${herd.map((t) => t.toFixed(2)).join(", ")} s; one client ${one.map((t) => t.toFixed(2)).join(", ")} s`),
    ];
  } finally {
    await s.close();
  }
}
