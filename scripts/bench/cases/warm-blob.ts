// A warm 64 MiB blob at 1 and 16 connections, against nginx sending the very same file (the
// cache's own store file) with sendfile.
import { makeImage, pushImage } from "../../../test/helpers/images.ts";
import { MiB, Scope, startBenchCache, startNginx, startRegistry, wrk, wrkRounds } from "../lib.ts";
import { atLeast, type Ctx, type Row } from "../report.ts";

const UP = "127.0.4.2";

export async function warmBlob(ctx: Ctx): Promise<Row[]> {
  const s = new Scope();
  try {
    const up = await startRegistry(s, UP);
    const mib = ctx.quick ? 16 : 64;
    // A one-file tar of exactly that size (header and end blocks included).
    const img = makeImage({ content: mib * MiB - 1536, uncompressed: true });
    const layer = img.blobs[1]!;
    const size = layer.bytes.byteLength;
    await pushImage({ base: up.base }, "bench/blob", "v1", img);
    const cache = await startBenchCache(s, { upstreams: [UP] });
    const ours = `${cache.url}/v2/${UP}/bench/blob/blobs/${layer.digest}`;
    const res = await fetch(ours);
    if (res.status !== 200 || (await res.arrayBuffer()).byteLength !== size) throw new Error(`warm-up of the blob failed: ${res.status}`);
    const nginx = await startNginx(s, cache.store);
    const theirs = `${nginx.url}/blobs/sha256/${layer.digest.slice(7)}`;
    const rows: Row[] = [];
    for (const connections of [1, 16]) {
      const run = (url: string, seconds = ctx.seconds) => () => wrk(url, { connections, seconds });
      ctx.log(`warm ${mib} MiB blob, ${connections} connection(s): ${ctx.warmup ? "warm-up, then " : ""}${ctx.rounds} round(s)`);
      if (ctx.warmup) for (const url of [ours, theirs]) await run(url, ctx.warmup)();
      const r = await wrkRounds(ctx.rounds, { ours: run(ours), nginx: run(theirs) });
      const mibs = (x: { rps: number }) => (x.rps * size) / MiB;
      rows.push(atLeast(`warm ${mib} MiB blob, ${connections} connection${connections > 1 ? "s" : ""}`, "MiB/s", mibs(r.ours!), mibs(r.nginx!), "nginx", 0.9));
    }
    return rows;
  } finally {
    await s.close();
  }
}
