// The store's size against start-up, memory, `list`, `prune --dry-run`, verify's record pass and
// warm request cost: stores made by make-store.ts where every tag is its own image (as in a real
// cache) of 1,000 / 10,000 / 100,000 tags, the shared-manifest store of 100,000 beside them, and
// 1,000,000 distinct tags (start-up, idle memory and list only). Idle RSS is compared with
// distribution idle (it keeps no per-tag state); list and prune with the same store written as
// records were before image summaries (every manifest read again).
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { BINARY } from "../../../test/helpers/binary.ts";
import { stopProcess } from "../../../test/helpers/procs.ts";
import { makeImage, pushImage } from "../../../test/helpers/images.ts";
import { cacheConfig, hyperfine, median, memory, Scope, spawnServe, startRegistry, wrk } from "../lib.ts";
import { makeStore, randomTagsScript, tagOf, type StoreShape } from "../make-store.ts";
import { ceiling, type Ctx, type Row } from "../report.ts";
import { millionStoreDir, verifyRecordPass } from "./store-room.ts";

const FAKE_UP = "127.0.4.9"; // named in the records; nothing listens there, nothing is asked
const DIST = "127.0.4.6";
const ACCEPT = "application/vnd.oci.image.manifest.v1+json";
const RSS_TARGET: Record<number, number> = { 10_000: 64, 100_000: 128 };

interface StoreCase {
  tags: number;
  shape: StoreShape;
  /** Every tag pulled once, then idle RSS and warm latency; otherwise start-up, idle RSS and list only. */
  pulled: boolean;
  /** The case the list, prune and verify targets are judged on (the largest distinct store pulled). */
  headline?: boolean;
  ownLayer?: boolean;
}

function storeCases(quick: boolean): StoreCase[] {
  if (quick) return [{ tags: 1_000, shape: "distinct", pulled: true, headline: true }];
  return [
    { tags: 1_000, shape: "distinct", pulled: true },
    { tags: 10_000, shape: "distinct", pulled: true },
    { tags: 100_000, shape: "distinct", pulled: true, headline: true },
    { tags: 100_000, shape: "shared", pulled: true },
    // A quarter fewer files (no own layer per image): 3 million files instead of 4.
    { tags: 1_000_000, shape: "distinct", pulled: false, ownLayer: false },
  ];
}

/**
 * RSS once start-up is over: the store walk runs in the background after ready (a 100,000-image
 * store's for ~3 s, peaking ~100 MiB over idle), so at least `settle` ms, then until two readings
 * a second apart differ by under 1 MiB (30 s at most).
 */
async function settledRss(pid: number, settle: number): Promise<number> {
  await Bun.sleep(settle);
  let last = memory(pid).rss;
  for (let i = 0; i < 30; i++) {
    await Bun.sleep(1000);
    const now = memory(pid).rss;
    if (Math.abs(now - last) < 1) return now;
    last = now;
  }
  return last;
}

async function distributionIdle(s: Scope, settle: number): Promise<number> {
  const d = await startRegistry(s, DIST);
  const img = makeImage();
  await pushImage({ base: d.base }, "bench/app", "v1", img);
  for (let i = 0; i < 100; i++) await fetch(`${d.base}/v2/bench/app/manifests/v1`, { headers: { Accept: ACCEPT } }).then((r) => r.arrayBuffer());
  for (const b of img.blobs) await fetch(`${d.base}/v2/bench/app/blobs/${b.digest}`).then((r) => r.arrayBuffer());
  await Bun.sleep(settle);
  return memory(d.proc.pid).rss;
}

/** list, prune --dry-run and verify's record pass on the headline store; list and prune against the same store in the older record format. */
async function recordPasses(ss: Scope, ctx: Ctx, c: StoreCase, dir: string, store: string, label: string, runs: number): Promise<Row[]> {
  const older = join(dir, "older");
  makeStore(c.tags, older, FAKE_UP, c.shape, { summaries: false });
  const cmd = (s: string, args: string) => `${BINARY} --image-path ${s} ${args}`;
  const PRUNE = "prune --older-than 30d --dry-run";
  ctx.log(`${label}: list, prune --dry-run, verify; then the same with records from before image summaries`);
  const list = await hyperfine(ss, cmd(store, "list"), { runs });
  const prune = await hyperfine(ss, cmd(store, PRUNE), { runs });
  const listOld = await hyperfine(ss, cmd(older, "list"), { runs });
  const pruneOld = await hyperfine(ss, cmd(older, PRUNE), { runs });
  // verify reads no manifest twice whatever the records hold (it learns them while hashing): no baseline of its own.
  const verify = await verifyRecordPass(store);
  const before = "records without summaries (as before)";
  return [
    ceiling(`list, ${label}`, "s", list.median, 3, { value: listOld.median, name: before }),
    ceiling(`prune --older-than 30d --dry-run, ${label}`, "s", prune.median, 3, { value: pruneOld.median, name: before }, "about half the images would go"),
    ceiling(`verify's record pass, ${label}`, "s", verify.recordS, 3, undefined,
      `manifests read again: ${verify.manifestReads}; the content pass (hashing every file) took ${verify.contentS.toFixed(1)} s`),
  ];
}

export async function storeScale(ctx: Ctx): Promise<Row[]> {
  const s = new Scope();
  try {
    const settle = ctx.quick ? 500 : 2000; // ms of quiet before reading an idle RSS
    // After a burst the cache gives memory back once quiet for 2 s (src/server/idle-trim.ts), and
    // the pages go over the next seconds: what it holds, not its peak, is read 15 s after the last pull.
    const afterBurst = ctx.quick ? 500 : 15_000;
    const distIdle = await distributionIdle(s, settle);
    const rows: Row[] = [];
    for (const c of storeCases(ctx.quick)) {
      const n = c.tags;
      const label = `${n.toLocaleString("en-US")} tags (${c.shape === "distinct" ? "distinct images" : "300 shared manifests"})`;
      const ss = new Scope();
      try {
        const dir = ss.tempDir("ocireg-bench-store-");
        const store = n >= 1_000_000 ? await millionStoreDir(ss, ctx) : join(dir, "store");
        const t0 = performance.now();
        makeStore(n, store, FAKE_UP, c.shape, { ownLayer: c.ownLayer });
        ctx.log(`${label}: store made in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
        const runs = ctx.quick || n >= 1_000_000 ? 1 : 3;
        if (c.headline) rows.push(...(await recordPasses(ss, ctx, c, dir, store, label, runs)));
        const list = c.headline ? undefined : await hyperfine(ss, `${BINARY} --image-path ${store} list`, { runs });
        const listS = list?.median ?? rows.find((r) => r.figure === `list, ${label}`)!.ours;

        const cfg = join(dir, "config.yml");
        writeFileSync(cfg, cacheConfig([FAKE_UP]));
        const spawn = () => spawnServe(ss, dir, ["--config-file", cfg, "--image-path", store]);
        ctx.log(`${label}: start-up to ready, ${runs} time(s)`);
        const startups: number[] = [];
        let rssStart = 0;
        for (let r = 0; r < runs; r++) {
          const t = performance.now();
          const p = await spawn();
          startups.push(await p.ready(t));
          rssStart = Math.max(rssStart, await settledRss(p.proc.pid, settle));
          await stopProcess(p.proc);
        }
        if (!c.pulled) {
          // No target of its own: a row of the scaling table.
          ctx.scaling.push({ tags: n, store: c.shape, startupS: median(startups), rssStartMiB: rssStart, listS });
          continue;
        }

        ctx.log(`${label}: every tag pulled once, then idle RSS and warm latency`);
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
        ctx.log(`${label}: all pulled once in ${((performance.now() - t1) / 1000).toFixed(1)} s (start-up included)`);
        await Bun.sleep(afterBurst);
        const rssPulled = memory(p.proc.pid).rss;
        const script = join(dir, "tags.lua");
        writeFileSync(script, randomTagsScript(n, FAKE_UP, ACCEPT));
        if (ctx.warmup) await wrk(p.url, { connections: 64, seconds: ctx.warmup, script });
        const w = await wrk(p.url, { connections: 64, seconds: ctx.seconds, script, latency: true });
        await stopProcess(p.proc);
        ctx.scaling.push({ tags: n, store: c.shape, startupS: median(startups), rssStartMiB: rssStart, rssPulledMiB: rssPulled, listS, p50Ms: w.p50Ms!, p99Ms: w.p99Ms!, rps: w.rps });

        const target = c.shape === "distinct" ? RSS_TARGET[n] ?? (ctx.quick ? 64 : undefined) : undefined;
        if (target) {
          rows.push(ceiling(`RSS idle, ${label} cached (each pulled once)`, "MiB", rssPulled, target, { value: distIdle, name: "distribution idle" },
            `RSS right after start-up: ${rssStart.toFixed(1)} MiB`));
        }
        if (c.headline) {
          rows.push(ceiling(`start-up to ready (spawn to first 200 from /readyz), ${label}`, "s", median(startups), 1, undefined, `runs: ${startups.map((x) => x.toFixed(3)).join(", ")} s`));
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
