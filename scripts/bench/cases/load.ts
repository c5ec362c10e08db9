// `ociregistry load` of 20 images that share two base layers, against skopeo copying them one
// by one: into a directory each (every image whole), and into one OCI layout (skopeo reuses the
// blobs it already has there). Timed with hyperfine, each run on an empty destination.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { BINARY } from "../../../test/helpers/binary.ts";
import { pushImage } from "../../../test/helpers/images.ts";
import { imageOf, randomLayer } from "../images.ts";
import { cacheConfig, hyperfine, MiB, Scope, sh, startRegistry } from "../lib.ts";
import { atMost, type Ctx, type Row } from "../report.ts";

const UP = "127.0.4.7";

export async function load(ctx: Ctx): Promise<Row[]> {
  const s = new Scope();
  try {
    const IMAGES = ctx.quick ? 5 : 20;
    const up = await startRegistry(s, UP);
    const base = ctx.quick ? [randomLayer(4 * MiB, "base.bin"), randomLayer(2 * MiB, "runtime.bin")]
      : [randomLayer(24 * MiB, "base.bin"), randomLayer(8 * MiB, "runtime.bin")];
    const refs: string[] = [];
    for (let i = 0; i < IMAGES; i++) {
      await pushImage({ base: up.base }, `bench/app${i}`, "v1", imageOf([...base, randomLayer(MiB, `app${i}.bin`)], `app${i}`));
      refs.push(`${UP}/bench/app${i}:v1`);
    }
    const dir = s.tempDir("ocireg-bench-load-");
    const [store, out] = [join(dir, "store"), join(dir, "out")];
    writeFileSync(join(dir, "images.txt"), refs.join("\n") + "\n");
    writeFileSync(join(dir, "config.yml"), cacheConfig([UP]));
    const copy = (dest: (i: number) => string) => refs.map((r, i) =>
      `skopeo --insecure-policy copy -q --src-tls-verify=false --retry-times 0 docker://${r} ${dest(i)}`).join(" && ");
    writeFileSync(join(dir, "skopeo-dir.sh"), `set -e\nmkdir -p ${out}\n${copy((i) => `dir:${out}/app${i}`)}\n`);
    writeFileSync(join(dir, "skopeo-oci.sh"), `set -e\nmkdir -p ${out}\n${copy((i) => `oci:${out}/layout:app${i}`)}\n`);
    const ours = `${BINARY} --config-file ${dir}/config.yml --image-path ${store} load --image-file ${dir}/images.txt`;

    ctx.log(`load of ${IMAGES} images sharing base layers: ${ctx.quick ? "" : "warm-up, then "}hyperfine, ${ctx.rounds} run(s) each`);
    if (!ctx.quick) {
      await sh(["sh", join(dir, "skopeo-dir.sh")]); // the upstream's files in the page cache
      await sh(["rm", "-rf", out]);
    }
    const runs = ctx.rounds;
    const t = {
      ours: await hyperfine(s, ours, { runs, prepare: `rm -rf ${store}` }),
      dir: await hyperfine(s, `sh ${dir}/skopeo-dir.sh`, { runs, prepare: `rm -rf ${out}` }),
      oci: await hyperfine(s, `sh ${dir}/skopeo-oci.sh`, { runs, prepare: `rm -rf ${out}` }),
    };
    const total = (base[0]!.bytes.byteLength + base[1]!.bytes.byteLength + MiB) / MiB;
    return [
      atMost(`load of ${IMAGES} images sharing base layers (${total} MiB each)`, "s", t.ours.median, t.dir.median, "skopeo one by one, dir: each", 0.5),
      atMost(`load of ${IMAGES} images sharing base layers (${total} MiB each)`, "s", t.ours.median, t.oci.median, "skopeo one by one, one OCI layout", 0.5,
        "skopeo reuses the base layers already in the layout, as the store does"),
    ];
  } finally {
    await s.close();
  }
}
