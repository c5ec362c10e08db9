// A cold pull of a 3-layer 200 MiB image with skopeo through a fresh cache, against skopeo
// pulling it straight from the upstream (distribution). Each round starts a new cache on an empty
// store before the clock starts; rounds alternate which pull goes first.
import { join } from "node:path";
import { pushImage } from "../../../test/helpers/images.ts";
import { imageOf, randomLayer } from "../images.ts";
import { median, MiB, Scope, sh, startBenchCache, startRegistry, timed } from "../lib.ts";
import { atMost, type Ctx, type Row } from "../report.ts";

const UP = "127.0.4.4";

export async function coldPull(ctx: Ctx): Promise<Row[]> {
  const s = new Scope();
  try {
    const LAYER_MIB = ctx.quick ? [8, 4, 4] : [112, 56, 32];
    const total = LAYER_MIB.reduce((a, b) => a + b);
    const up = await startRegistry(s, UP);
    const img = imageOf(LAYER_MIB.map((m) => randomLayer(m * MiB)));
    await pushImage({ base: up.base }, "bench/big", "v1", img);
    const out = s.tempDir("ocireg-bench-skopeo-");
    const skopeo = async (ref: string) => {
      await sh(["skopeo", "--insecure-policy", "copy", "--src-tls-verify=false", "--retry-times", "0", `docker://${ref}`, `dir:${join(out, "image")}`]);
      await sh(["rm", "-rf", join(out, "image")]);
    };
    ctx.log(`cold pull of a ${total} MiB image with skopeo: warm-up, then ${ctx.rounds} round(s)`);
    await skopeo(`${UP}/bench/big:v1`); // the upstream's files in the page cache, skopeo's binary too
    const times = { cache: [] as number[], direct: [] as number[] };
    for (let r = 0; r < ctx.rounds; r++) {
      const cacheRound = async () => {
        const rs = new Scope();
        try {
          const cache = await startBenchCache(rs, { upstreams: [UP] });
          times.cache.push(await timed(() => skopeo(`127.0.0.1:${cache.port}/${UP}/bench/big:v1`)));
        } finally {
          await rs.close();
        }
      };
      const directRound = async () => times.direct.push(await timed(() => skopeo(`${UP}/bench/big:v1`)));
      for (const f of r % 2 ? [directRound, cacheRound] : [cacheRound, directRound]) await f();
    }
    return [atMost(`cold pull, 3-layer ${total} MiB image, skopeo`, "s", median(times.cache), median(times.direct), "skopeo from upstream", 1.1,
      `rounds: cache ${times.cache.map((t) => t.toFixed(2)).join(", ")} s; direct ${times.direct.map((t) => t.toFixed(2)).join(", ")} s`)];
  } finally {
    await s.close();
  }
}
