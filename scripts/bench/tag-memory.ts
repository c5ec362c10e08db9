// Memory of a running cache against the tags it has served: idle RSS on an empty store, then RSS
// after each of N distinct images (a store made by make-store.ts --distinct) was pulled once.
// Usage: bun scripts/bench/tag-memory.ts N [N...] [--store-root DIR] [--binary PATH] [--heap] [--env K=V...]
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readFileSync } from "node:fs";
import { BINARY } from "../../test/helpers/binary.ts";
import { stopProcess, track } from "../../test/helpers/procs.ts";
import { cacheConfig, freePort, memory, Scope } from "./lib.ts";
import { makeStore, tagOf } from "./make-store.ts";

const UP = "127.0.31.9"; // named in the records; nothing listens there, nothing is asked
const ACCEPT = "application/vnd.oci.image.manifest.v1+json";
const SETTLE_MS = Number(process.env.SETTLE_MS ?? 2000);

/** RSS in MiB of a cache over `store` idle, and after every one of its first `n` tags was pulled once. */
export async function tagMemory(s: Scope, store: string, n: number, o: { env?: Record<string, string>; binary?: string; heap?: boolean } = {}): Promise<{ idle: number; pulled: number; seconds: number }> {
  const dir = s.tempDir("ocireg-tag-memory-");
  const cfg = join(dir, "config.yml");
  writeFileSync(cfg, cacheConfig([UP]));
  const port = await freePort();
  const log = join(dir, "serve.log");
  const proc = track(Bun.spawn([o.binary ?? BINARY, "--config-file", cfg, "--image-path", store, "serve", "--host", "127.0.0.1", "--port", String(port)], {
    stdout: "ignore", stderr: Bun.file(log), env: { ...process.env, ...o.env },
  }));
  s.add(() => stopProcess(proc));
  const p = { proc, url: `http://127.0.0.1:${port}` };
  for (let i = 0; (await fetch(`${p.url}/readyz`).then((r) => r.status, () => 0)) !== 200; i++) {
    if (i > 3000 || proc.exitCode !== null) throw new Error(`serve not ready: ${readFileSync(log, "utf8")}`);
    await Bun.sleep(10);
  }
  /** The heap report of a probe binary (.memprobe-app.ts), when asked for. */
  const heap = async (label: string) => {
    if (!o.heap) return;
    proc.kill("SIGUSR2");
    await Bun.sleep(Number(process.env.HEAP_WAIT_MS ?? 1500));
    const lines = readFileSync(log, "utf8").split("\n").filter((l) => l.startsWith("HEAP ")).slice(-2);
    for (const line of lines) console.log(`  ${label}: ${line}`);
  };
  await Bun.sleep(SETTLE_MS);
  const idle = memory(p.proc.pid).rss;
  await heap("idle");
  let next = 0;
  const t1 = performance.now();
  await Promise.all(Array.from({ length: 64 }, async () => {
    while (next < n) {
      const { repository, tag } = tagOf(next++);
      const res = await fetch(`${p.url}/v2/${UP}/${repository}/manifests/${tag}`, { headers: { Accept: ACCEPT } });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`${repository}:${tag}: HTTP ${res.status}`);
    }
  }));
  const seconds = (performance.now() - t1) / 1000;
  await Bun.sleep(SETTLE_MS);
  const pulled = memory(p.proc.pid).rss;
  await heap("pulled");
  await stopProcess(p.proc);
  return { idle, pulled, seconds };
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  const opt = (k: string) => (args.includes(k) ? args[args.indexOf(k) + 1] : undefined);
  const root = opt("--store-root") ?? mkdtempSync(join(tmpdir(), "ocireg-stores-"));
  const binary = opt("--binary");
  const heap = args.includes("--heap");
  const env = Object.fromEntries(args.flatMap((a, i) => (args[i - 1] === "--env" ? [a.split("=", 2) as [string, string]] : [])));
  const sizes = args.filter((a, i) => /^\d+$/.test(a) && !args[i - 1]?.startsWith("--")).map(Number);
  const s = new Scope();
  try {
    const empty = join(root, "empty");
    mkdirSync(empty, { recursive: true });
    console.log(`binary ${binary ?? BINARY}; env ${JSON.stringify(env)}`);
    const e = await tagMemory(s, empty, 0, { env, binary, heap });
    console.log(`empty store: idle ${e.idle.toFixed(1)} MiB`);
    for (const n of sizes) {
      const store = join(root, `distinct-${n}`);
      if (!existsSync(join(store, "repositories"))) makeStore(n, store, UP, "distinct");
      const r = await tagMemory(s, store, n, { env, binary, heap });
      console.log(`${n} distinct tags: idle ${r.idle.toFixed(1)} MiB, every tag pulled once ${r.pulled.toFixed(1)} MiB (pulled in ${r.seconds.toFixed(1)} s)`);
    }
  } finally {
    await s.close();
  }
}
