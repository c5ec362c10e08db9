// A size-bounded store (issue 20). Eviction: a store of 10,000 distinct images served with
// `--max-size` about half its bytes evicts at start-up, in the background; the time its own log
// line reports, against `prune --older-than 30d` removing about as many images from a twin store;
// afterwards the store is under maxSize, the least recently pulled went first and `verify` is clean.
// The bound's cost on hits: warm manifests by tag with a maxSize that evicts nothing against none.
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BINARY } from "../../../test/helpers/binary.ts";
import { stopProcess } from "../../../test/helpers/procs.ts";
import { cacheConfig, MiB, Scope, sh, spawnServe, timed, wrk, wrkRounds, type SpawnedServe } from "../lib.ts";
import { makeStore, randomTagsScript, tagOf } from "../make-store.ts";
import { atLeast, ceiling, type Ctx, type Row } from "../report.ts";

const FAKE_UP = "127.0.21.9"; // named in the records; nothing listens there, nothing is asked
const ACCEPT = "application/vnd.oci.image.manifest.v1+json";
/** The info line of one eviction run: `evicted N image(s), B bytes in T ms (reason: …)`. */
const EVICTED = /evicted (\d+) image\(s\), (\d+) bytes in (\d+) ms/;
const TARGET_S = 5; // "evicting 10,000 images takes seconds"
const RATIO = 0.95;

export async function eviction(ctx: Ctx): Promise<Row[]> {
  const n = ctx.quick ? 1_000 : 10_000;
  return [...(await evictAtStart(ctx, n)), ...(await warmWithBound(ctx, n))];
}

/** Bytes of blobs and manifests, walked (what the store must keep under maxSize). */
function contentBytes(store: string): number {
  let bytes = 0;
  for (const kind of ["blobs", "manifests"]) {
    const d = join(store, kind, "sha256");
    for (const f of readdirSync(d)) bytes += statSync(join(d, f)).size;
  }
  return bytes;
}

function recordFile(store: string, i: number): string {
  const { repository, tag } = tagOf(i);
  return join(store, "repositories", FAKE_UP, repository, "_tags", `${tag}.json`);
}

async function waitForLine(p: SpawnedServe, re: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
  const t0 = performance.now();
  for (;;) {
    const m = p.output().match(re);
    if (m) return m;
    if (p.proc.exitCode !== null) throw new Error(`serve exited ${p.proc.exitCode}: ${p.output().slice(-2000)}`);
    if (performance.now() - t0 > timeoutMs) throw new Error(`no line matching ${re} after ${timeoutMs / 1000} s: ${p.output().slice(-2000)}`);
    await Bun.sleep(10);
  }
}

/** Records i kept and gone; whether every kept one was pulled more recently than every gone one (age = i mod 60 days). */
function evictionOrder(store: string, n: number) {
  let kept = 0;
  let oldestKept = -1;
  let youngestGone = 60;
  for (let i = 0; i < n; i++) {
    if (existsSync(recordFile(store, i))) {
      kept++;
      oldestKept = Math.max(oldestKept, i % 60);
    } else youngestGone = Math.min(youngestGone, i % 60);
  }
  return { kept, gone: n - kept, lruFirst: oldestKept <= youngestGone, oldestKept };
}

async function evictAtStart(ctx: Ctx, n: number): Promise<Row[]> {
  const s = new Scope();
  try {
    const dir = s.tempDir("ocireg-bench-evict-");
    const label = `${n.toLocaleString("en-US")} images`;
    const made = makeStore(n, join(dir, "evict"), FAKE_UP, "distinct");
    const twin = makeStore(n, join(dir, "prune"), FAKE_UP, "distinct");
    const maxSize = Math.floor(made.bytes / 2);
    ctx.log(`eviction: two stores of ${label} (${(made.bytes / MiB).toFixed(1)} MiB each); prune --older-than 30d on one, the baseline`);
    let pruned = "";
    const pruneS = await timed(async () => (pruned = (await sh([BINARY, "--image-path", twin.dir, "prune", "--older-than", "30d"])).stdout));
    const prunedImages = Number(pruned.match(/removed (\d+) image\(s\)/)?.[1] ?? NaN);

    ctx.log(`eviction: serve on the other with --max-size ${maxSize} (half of it), until its eviction line`);
    const cfg = join(dir, "config.yml");
    writeFileSync(cfg, cacheConfig([FAKE_UP]));
    const t0 = performance.now();
    const p = await spawnServe(s, dir, ["--config-file", cfg, "--image-path", made.dir, "--max-size", String(maxSize)]);
    const m = await waitForLine(p, EVICTED, 120_000);
    const wallS = (performance.now() - t0) / 1000;
    await stopProcess(p.proc);
    const [images, bytes, ms] = [Number(m[1]), Number(m[2]), Number(m[3])];

    const after = contentBytes(made.dir);
    const order = evictionOrder(made.dir, n);
    const v = await sh([BINARY, "--image-path", made.dir, "verify"], { allowFail: true });
    const verifyLines = v.stdout.trim().split("\n");
    // Clean: the size serve recorded is the size walked (no drift line), no problem, nothing incomplete or unreferenced.
    const clean = v.code === 0 && / 0 problem\(s\) found$/.test(verifyLines.at(-1)!) &&
      verifyLines.slice(0, -1).every((l) => /^store size: .* as recorded$/.test(l));
    const checks = [
      after <= maxSize ? "" : `store ${after} bytes after eviction, over maxSize ${maxSize}`,
      order.gone === images ? "" : `the log says ${images} image(s) evicted, ${order.gone} record(s) are gone`,
      order.lruFirst ? "" : "an image pulled more recently went before an older one",
      clean ? "" : `verify not clean (exit ${v.code}): ${v.stdout.trim().slice(-500)}`,
    ].filter(Boolean);
    const rate = images / (ms / 1000);
    const note = [
      `${images} images, ${(bytes / MiB).toFixed(1)} MiB evicted, ${Math.round(rate).toLocaleString("en-US")} images/s`,
      `${wallS.toFixed(2)} s from spawn to the line`,
      `store after: ${((100 * after) / maxSize).toFixed(0)}% of maxSize, kept images last pulled 0–${order.oldestKept} days ago`,
      `prune removed ${prunedImages} images`,
      ...(checks.length ? checks : ["verify clean"]),
    ].join("; ");
    ctx.log(`eviction: ${note}`);
    return [{
      ...ceiling(`eviction of ${label} at start-up, --max-size half the store (time the run logs)`, "s", ms / 1000, TARGET_S,
        { value: pruneS, name: "prune --older-than 30d" }, note),
      met: ms / 1000 <= TARGET_S && checks.length === 0,
    }];
  } finally {
    await s.close();
  }
}

/** The manifest bytes record i of a store points at. */
function manifestOf(store: string, i: number): Uint8Array {
  const digest = (JSON.parse(readFileSync(recordFile(store, i), "utf8")) as { digest: string }).digest;
  return readFileSync(join(store, "manifests", "sha256", digest.slice(7)));
}

async function warmWithBound(ctx: Ctx, n: number): Promise<Row[]> {
  const s = new Scope();
  try {
    const dir = s.tempDir("ocireg-bench-bound-");
    const label = `${n.toLocaleString("en-US")} images`;
    const bounded = makeStore(n, join(dir, "bounded"), FAKE_UP, "distinct");
    const plain = makeStore(n, join(dir, "plain"), FAKE_UP, "distinct");
    const cfg = join(dir, "config.yml");
    writeFileSync(cfg, cacheConfig([FAKE_UP]));
    // Twice the store: the bound is counted on every commit but nothing is ever evicted.
    const maxSize = bounded.bytes * 2;
    const t0 = performance.now();
    const servers = {
      "maxSize set": await spawnServe(s, dir, ["--config-file", cfg, "--image-path", bounded.dir, "--max-size", String(maxSize)]),
      "no maxSize": await spawnServe(s, dir, ["--config-file", cfg, "--image-path", plain.dir]),
    };
    for (const p of Object.values(servers)) await p.ready(t0);
    const { repository, tag } = tagOf(0);
    const path = `/v2/${FAKE_UP}/${repository}/manifests/${tag}`;
    for (const [name, store] of [["maxSize set", bounded.dir], ["no maxSize", plain.dir]] as const) {
      const res = await fetch(servers[name].url + path, { headers: { Accept: ACCEPT } });
      const body = new Uint8Array(await res.arrayBuffer());
      if (res.status !== 200 || Buffer.compare(body, manifestOf(store, 0)) !== 0) throw new Error(`${name}: ${path}: ${res.status}, not the manifest's bytes`);
    }
    const script = join(dir, "tags.lua");
    writeFileSync(script, randomTagsScript(n, FAKE_UP, ACCEPT));
    const rows: Row[] = [];
    // Two more rounds than elsewhere: the target (0.95) is closer to 1 than two alike servers' spread in 3 rounds.
    const rounds = ctx.quick ? ctx.rounds : ctx.rounds + 2;
    for (const [how, url, o] of [["one tag", path, { headers: { Accept: ACCEPT } }], [`random tags of ${label}`, "", { script }]] as const) {
      const run = (base: string, seconds = ctx.seconds) => () => wrk(base + url, { connections: 64, seconds, ...o });
      ctx.log(`warm manifest by tag (${how}), maxSize set and not, 64 connections: ${ctx.warmup ? "warm-up, then " : ""}${rounds} round(s)`);
      if (ctx.warmup) for (const p of Object.values(servers)) await run(p.url, ctx.warmup)();
      const r = await wrkRounds(rounds, { bounded: run(servers["maxSize set"].url), plain: run(servers["no maxSize"].url) });
      rows.push(atLeast(`warm manifest by tag (${how}), 64 connections, maxSize set (nothing to evict)`, "req/s", r.bounded!.rps, r.plain!.rps,
        "no maxSize", RATIO, `distinct-image stores of ${label}; maxSize twice the store`));
    }
    const evicted = servers["maxSize set"].output().match(EVICTED);
    if (evicted) throw new Error(`the bounded cache evicted with maxSize twice its store: ${evicted[0]}`);
    return rows;
  } finally {
    await s.close();
  }
}
