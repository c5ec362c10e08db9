// A soak: 64 connections for 2 minutes of mixed warm hits (manifests by tag and by digest, small
// blobs, a 1 MiB blob, ranges of it), after a warm-up; RSS sampled every 2 s must stay flat and
// no request may fail.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { makeImage, pushImage, type Image } from "../../../test/helpers/images.ts";
import { memory, MiB, Scope, startBenchCache, startRegistry, wrk } from "../lib.ts";
import type { Ctx, Row } from "../report.ts";

const UP = "127.0.4.8";
const ACCEPT = "application/vnd.oci.image.manifest.v1+json";
const RANGES = ["bytes=0-65535", "bytes=65536-131071", "bytes=524288-", "bytes=-4096", "bytes=1000-1999", "bytes=0-0"];

export async function soak(ctx: Ctx): Promise<Row[]> {
  const s = new Scope();
  try {
    const up = await startRegistry(s, UP);
    const images: Array<[string, Image]> = [0, 1, 2, 3].map((i) => [`bench/small${i}`, makeImage()]);
    const big = makeImage({ content: MiB - 1536, uncompressed: true });
    images.push(["bench/big", big]);
    for (const [repo, img] of images) await pushImage({ base: up.base }, repo, "v1", img);
    const cache = await startBenchCache(s, { upstreams: [UP] });
    // [path, Range header, copies in the mix]
    const mix: Array<[string, string | null, number]> = [];
    for (const [repo, img] of images) {
      mix.push([`/v2/${UP}/${repo}/manifests/v1`, null, 3], [`/v2/${UP}/${repo}/manifests/${img.digest}`, null, 2]);
      for (const b of img.blobs) mix.push([`/v2/${UP}/${repo}/blobs/${b.digest}`, null, img === big && b === big.blobs[1] ? 3 : 1]);
    }
    const bigBlob = `/v2/${UP}/bench/big/blobs/${big.blobs[1]!.digest}`;
    for (const r of RANGES) mix.push([bigBlob, r, 1]);
    for (const [path, range] of mix) {
      const res = await fetch(`${cache.url}${path}`, { headers: { Accept: ACCEPT, ...(range ? { Range: range } : {}) } });
      await res.arrayBuffer();
      if (res.status !== (range ? 206 : 200)) throw new Error(`warm-up ${path} ${range ?? ""}: HTTP ${res.status}`);
    }
    const script = join(s.tempDir("ocireg-bench-soak-"), "mix.lua");
    writeFileSync(script, `math.randomseed(1)
local mix = {
${mix.map(([p, r, n]) => `  {"${p}", ${r ? `"${r}"` : "nil"}, ${n}},`).join("\n")}
}
local reqs = {}
init = function(args)
  for _, m in ipairs(mix) do
    local h = { Accept = "${ACCEPT}" }
    if m[2] then h["Range"] = m[2] end
    for _ = 1, m[3] do table.insert(reqs, wrk.format("GET", m[1], h)) end
  end
end
request = function() return reqs[math.random(#reqs)] end
`);
    const warmup = ctx.quick ? 1 : 20;
    const seconds = ctx.quick ? 5 : 120;
    ctx.log(`soak: ${warmup} s warm-up, then ${seconds} s at 64 connections, mixed hits`);
    await wrk(cache.url, { connections: 64, seconds: warmup, script });
    await Bun.sleep(1000);
    const after = memory(cache.proc.pid).rss;
    const samples: number[] = [];
    const timer = setInterval(() => samples.push(memory(cache.proc.pid).rss), 2000);
    const w = await wrk(cache.url, { connections: 64, seconds, script, allowErrors: true }).finally(() => clearInterval(timer));
    await Bun.sleep(1000);
    const end = memory(cache.proc.pid).rss;
    const errors = w.non2xx + w.socketErrors;
    const ratio = end / after;
    return [{
      figure: `${seconds} s soak at 64 connections, mixed hits: RSS at the end`, unit: "MiB", ours: end, baseline: after, baselineName: "after warm-up",
      ratio, target: "≤ 1.1× after warm-up, no error", met: ratio <= 1.1 && errors === 0,
      note: `${w.requests.toLocaleString("en-US")} requests (${w.rps.toFixed(0)}/s, ${(w.bytesPerSec / MiB).toFixed(0)} MiB/s), ${w.non2xx} non-2xx, ${w.socketErrors} socket errors; RSS max during the soak ${Math.max(...samples, end).toFixed(1)} MiB`,
    }];
  } finally {
    await s.close();
  }
}
