// A cold pull of a 3-layer 200 MiB image with skopeo through a fresh cache, against skopeo
// pulling it straight from the upstream (distribution), and through distribution's own
// pull-through mode (`proxy.remoteurl`). Each round starts a new cache and a new proxy on empty
// stores before the clock starts; rounds rotate which pull goes first.
import { join } from "node:path";
import { pushImage } from "../../../test/helpers/images.ts";
import { imageOf, randomLayer } from "../images.ts";
import { median, MiB, Scope, sh, startBenchCache, startRegistry, timed } from "../lib.ts";
import { atMost, type Ctx, type Row } from "../report.ts";

const UP = "127.0.4.4";
/** distribution in proxy mode, a pull-through cache of UP. */
const PROXY = "127.0.4.10";

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
    const times = { cache: [] as number[], direct: [] as number[], proxy: [] as number[] };
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
      const proxyRound = async () => {
        const rs = new Scope();
        try {
          // It exits at start-up when its upstream is unreachable: UP is up already.
          await startRegistry(rs, PROXY, { extraYaml: `proxy:\n  remoteurl: ${up.base}\n` });
          times.proxy.push(await timed(() => skopeo(`${PROXY}/bench/big:v1`)));
        } finally {
          await rs.close();
        }
      };
      const order = [cacheRound, directRound, proxyRound];
      for (let i = 0; i < order.length; i++) await order[(i + r) % order.length]!();
    }
    const figure = `cold pull, 3-layer ${total} MiB image, skopeo`;
    const note = `rounds: cache ${times.cache.map((t) => t.toFixed(2)).join(", ")} s; direct ${times.direct.map((t) => t.toFixed(2)).join(", ")} s; distribution's proxy ${times.proxy.map((t) => t.toFixed(2)).join(", ")} s`;
    return [
      atMost(figure, "s", median(times.cache), median(times.direct), "skopeo from upstream", 1.1, note),
      atMost(figure, "s", median(times.cache), median(times.proxy), "distribution's proxy mode", 1, note),
    ];
  } finally {
    await s.close();
  }
}
