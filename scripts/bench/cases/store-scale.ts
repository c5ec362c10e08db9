// The store's size against start-up, memory, `list`, `prune --dry-run` and warm request cost:
// stores of 1,000 / 10,000 / 100,000 tag records made by make-store.ts, each served by the
// compiled cache. Idle RSS is compared with distribution idle (it keeps no per-tag state).
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { BINARY } from "../../../test/helpers/binary.ts";
import { stopProcess } from "../../../test/helpers/procs.ts";
import { makeImage, pushImage } from "../../../test/helpers/images.ts";
import { cacheConfig, hyperfine, median, memory, Scope, spawnServe, startRegistry, wrk } from "../lib.ts";
import { makeStore, randomTagsScript, tagOf } from "../make-store.ts";
import { ceiling, type Ctx, type Row } from "../report.ts";

const FAKE_UP = "127.0.4.9"; // named in the records; nothing listens there, nothing is asked
const DIST = "127.0.4.6";
const ACCEPT = "application/vnd.oci.image.manifest.v1+json";
const RSS_TARGET: Record<number, number> = { 10_000: 64, 100_000: 128 };

async function distributionIdle(s: Scope, settle: number): Promise<number> {
  const d = await startRegistry(s, DIST);
  const img = makeImage();
  await pushImage({ base: d.base }, "bench/app", "v1", img);
  for (let i = 0; i < 100; i++) await fetch(`${d.base}/v2/bench/app/manifests/v1`, { headers: { Accept: ACCEPT } }).then((r) => r.arrayBuffer());
  for (const b of img.blobs) await fetch(`${d.base}/v2/bench/app/blobs/${b.digest}`).then((r) => r.arrayBuffer());
  await Bun.sleep(settle);
  return memory(d.proc.pid).rss;
}

export async function storeScale(ctx: Ctx): Promise<Row[]> {
  const s = new Scope();
  try {
    const sizes = ctx.quick ? [1_000] : [1_000, 10_000, 100_000];
    const settle = ctx.quick ? 500 : 2000; // ms of quiet before reading an idle RSS
    const distIdle = await distributionIdle(s, settle);
    const rows: Row[] = [];
    for (const n of sizes) {
      const ss = new Scope();
      try {
        const dir = ss.tempDir("ocireg-bench-store-");
        const store = join(dir, "store");
        const t0 = performance.now();
        makeStore(n, store, FAKE_UP);
        ctx.log(`${n.toLocaleString("en-US")} tags: store made in ${((performance.now() - t0) / 1000).toFixed(1)} s; list${n === sizes.at(-1) ? ", prune --dry-run" : ""}`);
        const runs = ctx.quick ? 1 : 3;
        const list = await hyperfine(ss, `${BINARY} --image-path ${store} list`, { runs });
        const prune = n === sizes.at(-1) ? await hyperfine(ss, `${BINARY} --image-path ${store} prune --older-than 30d --dry-run`, { runs }) : undefined;

        const cfg = join(dir, "config.yml");
        writeFileSync(cfg, cacheConfig([FAKE_UP]));
        const spawn = () => spawnServe(ss, dir, ["--config-file", cfg, "--image-path", store]);
        ctx.log(`${n.toLocaleString("en-US")} tags: start-up to ready, ${runs} time(s)`);
        const startups: number[] = [];
        let rssStart = 0;
        for (let r = 0; r < runs; r++) {
          const t = performance.now();
          const p = await spawn();
          startups.push(await p.ready(t));
          await Bun.sleep(settle);
          rssStart = Math.max(rssStart, memory(p.proc.pid).rss);
          await stopProcess(p.proc);
        }

        ctx.log(`${n.toLocaleString("en-US")} tags: every tag pulled once, then idle RSS and warm latency`);
        const t1 = performance.now();
        const p = await spawn();
        await p.ready(t1);
        let next = 0;
        await Promise.all(Array.from({ length: 64 }, async () => {
          while (next < n) {
            const { repository, tag } = tagOf(next++);
            const res = await fetch(`${p.url}/v2/${FAKE_UP}/${repository}/manifests/${tag}`, { headers: { Accept: ACCEPT } });
            await res.arrayBuffer();
            if (res.status !== 200) throw new Error(`${repository}:${tag}: HTTP ${res.status}`);
          }
        }));
        ctx.log(`${n.toLocaleString("en-US")} tags: all pulled once in ${((performance.now() - t1) / 1000).toFixed(1)} s (start-up included)`);
        await Bun.sleep(settle);
        const rssPulled = memory(p.proc.pid).rss;
        const script = join(dir, "tags.lua");
        writeFileSync(script, randomTagsScript(n, FAKE_UP, ACCEPT));
        if (ctx.warmup) await wrk(p.url, { connections: 64, seconds: ctx.warmup, script });
        const w = await wrk(p.url, { connections: 64, seconds: ctx.seconds, script, latency: true });
        await stopProcess(p.proc);
        ctx.scaling.push({ tags: n, startupS: median(startups), rssStartMiB: rssStart, rssPulledMiB: rssPulled, listS: list.median, p50Ms: w.p50Ms!, p99Ms: w.p99Ms!, rps: w.rps });

        const label = `${n.toLocaleString("en-US")} tags`;
        const target = RSS_TARGET[n] ?? (ctx.quick ? 64 : undefined);
        if (target) {
          rows.push(ceiling(`RSS idle, ${label} cached (each pulled once)`, "MiB", rssPulled, target, { value: distIdle, name: "distribution idle" },
            `RSS right after start-up: ${rssStart.toFixed(1)} MiB`));
        }
        if (n === sizes.at(-1)) {
          rows.push(ceiling(`start-up to ready (spawn to first 200 from /readyz), ${label}`, "s", median(startups), 1, undefined, `runs: ${startups.map((x) => x.toFixed(3)).join(", ")} s`));
          rows.push(ceiling(`list, ${label}`, "s", list.median, 3));
          rows.push(ceiling(`prune --older-than 30d --dry-run, ${label}`, "s", prune!.median, 3, undefined, "about half the images would go"));
        }
      } finally {
        await ss.close();
      }
    }
    return rows;
  } finally {
    await s.close();
  }
}
