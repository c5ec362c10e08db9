// Shared pieces of the benchmark: scopes that stop what they started (also on Ctrl-C), wrk,
// hyperfine, memory from /proc, nginx and distribution as baselines, free ports, medians.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { BINARY, startCache, type RunningCache } from "../../test/helpers/binary.ts";
import { stopProcess, track, waitFor } from "../../test/helpers/procs.ts";

// ---------------------------------------------------------------- scopes and cleanup

const open = new Set<Scope>();

/** What one case started: closed in reverse order, by the case or by an interrupt. */
export class Scope {
  private readonly stops: Array<() => unknown> = [];
  constructor() {
    open.add(this);
  }
  add(stop: () => unknown) {
    this.stops.push(stop);
  }
  tempDir(prefix: string): string {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    this.add(() => rmSync(dir, { recursive: true, force: true }));
    return dir;
  }
  async close() {
    open.delete(this);
    while (this.stops.length) {
      try {
        await this.stops.pop()!();
      } catch (err) {
        console.error(`cleanup: ${(err as Error).message}`);
      }
    }
  }
}

export async function closeAll() {
  for (const s of [...open].reverse()) await s.close();
}

let interrupted = false;
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(sig, () => {
    if (interrupted) return;
    interrupted = true;
    console.error(`\n${sig}: stopping every process this benchmark started…`);
    void closeAll().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------- processes

/** Runs a command to completion (tracked, so an interrupt kills it); throws when it fails. */
export async function sh(cmd: string[], opts: { allowFail?: boolean; env?: Record<string, string> } = {}) {
  const p = track(Bun.spawn(cmd, { stdout: "pipe", stderr: "pipe", env: { ...process.env, ...opts.env } }));
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0 && !opts.allowFail) throw new Error(`${cmd.join(" ")} exited ${code}\n${stdout.slice(-2000)}\n${stderr.slice(-2000)}`);
  return { stdout, stderr, code };
}

export async function freePort(): Promise<number> {
  const srv = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = srv.port;
  srv.stop(true);
  return port;
}

export const MiB = 1024 * 1024;

/** VmRSS and VmHWM (peak) of a process, in MiB. */
export function memory(pid: number) {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (k: string) => Number(status.match(new RegExp(`${k}:\\s+(\\d+)`))![1]);
  return { rss: kb("VmRSS") / 1024, hwm: kb("VmHWM") / 1024 };
}

export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

export async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

// ---------------------------------------------------------------- the cache

/** The compiled cache on a fresh store, with a config file; stopped when the scope closes. */
export async function startBenchCache(s: Scope, opts: { upstreams: string[]; store?: string; extraYaml?: string; env?: Record<string, string> }): Promise<RunningCache & { store: string }> {
  const dir = s.tempDir("ocireg-bench-cache-");
  const store = opts.store ?? join(dir, "store");
  const cfg = join(dir, "config.yml");
  writeFileSync(cfg, cacheConfig(opts.upstreams, opts.extraYaml));
  // Its log goes to a file, as a container runtime's would: this process does not read it while it measures.
  const c = await startCache(["--config-file", cfg, "--image-path", store], opts.env, { logFile: join(dir, "cache.log") });
  s.add(() => c.stop());
  return { ...c, store };
}

/** A `serve` spawned (not yet ready) by `spawnServe`; its log goes to a file. */
export interface SpawnedServe {
  proc: Subprocess;
  log: string;
  url: string;
  /** Seconds since `since` (a `performance.now()`) when `/readyz` first answered 200. */
  ready(since: number, timeoutMs?: number): Promise<number>;
  /** Everything logged so far. */
  output(): string;
}

let spawned = 0;

/**
 * `ociregistry [global...] serve` on a free port of 127.0.0.1, stopped when the scope closes. The
 * log goes to a file in `dir`: an unread pipe could fill up and stall the cache, and a pipe the
 * benchmark pumps would cost CPU while it measures.
 */
export async function spawnServe(s: Scope, dir: string, globals: string[]): Promise<SpawnedServe> {
  const port = await freePort();
  const log = join(dir, `serve-${spawned++}.log`);
  const proc = track(Bun.spawn([BINARY, ...globals, "serve", "--host", "127.0.0.1", "--port", String(port)], { stdout: "ignore", stderr: Bun.file(log) }));
  s.add(() => stopProcess(proc));
  const url = `http://127.0.0.1:${port}`;
  const output = () => readFileSync(log, "utf8");
  return {
    proc, log, url, output,
    async ready(since, timeoutMs = 30_000) {
      for (;;) {
        if ((await fetch(`${url}/readyz`).then((r) => r.status, () => 0)) === 200) return (performance.now() - since) / 1000;
        if (proc.exitCode !== null) throw new Error(`serve exited ${proc.exitCode}: ${output()}`);
        if (performance.now() - since > timeoutMs) throw new Error(`serve not ready after ${timeoutMs / 1000} s`);
        await Bun.sleep(5);
      }
    },
  };
}

/** Config for warm cases: plain-HTTP upstreams, tags trusted for an hour (no revalidation while measuring). */
export function cacheConfig(upstreams: string[], extraYaml = "") {
  return `registries:\n${upstreams.map((u) => `  - name: ${u}\n    scheme: http\n`).join("")}revalidateAfter: 1h\n${extraYaml}`;
}

// ---------------------------------------------------------------- wrk

export interface WrkResult {
  rps: number;
  /** Response body and header bytes per second. */
  bytesPerSec: number;
  requests: number;
  non2xx: number;
  socketErrors: number;
  p50Ms?: number;
  p99Ms?: number;
  raw: string;
}

const UNITS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 };
const SIZE: Record<string, number> = { B: 1, KB: 1024, MB: MiB, GB: 1024 * MiB };

/** `wrk -t1`; throws on any non-2xx answer or socket error unless `allowErrors` (a fast error is not a fast registry). */
export async function wrk(url: string, o: { connections: number; seconds: number; headers?: Record<string, string>; script?: string; latency?: boolean; timeout?: number; allowErrors?: boolean }): Promise<WrkResult> {
  const args = ["wrk", "-t1", `-c${o.connections}`, `-d${o.seconds}s`, `--timeout`, `${o.timeout ?? 10}s`];
  for (const [k, v] of Object.entries(o.headers ?? {})) args.push("-H", `${k}: ${v}`);
  if (o.script) args.push("-s", o.script);
  if (o.latency) args.push("--latency");
  const out = (await sh([...args, url])).stdout;
  const num = (re: RegExp) => Number(out.match(re)?.[1] ?? 0);
  const sock = out.match(/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/);
  const r: WrkResult = {
    rps: num(/Requests\/sec:\s+([\d.]+)/),
    bytesPerSec: (() => {
      const m = out.match(/Transfer\/sec:\s+([\d.]+)(B|KB|MB|GB)/);
      return m ? Number(m[1]) * SIZE[m[2]!]! : 0;
    })(),
    requests: num(/(\d+) requests in/),
    non2xx: num(/Non-2xx or 3xx responses: (\d+)/),
    socketErrors: sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0,
    raw: out,
  };
  if (o.latency) {
    const lat = (p: string) => {
      const m = out.match(new RegExp(`\\s${p}%\\s+([\\d.]+)(us|ms|s|m)\\b`));
      return m ? Number(m[1]) * UNITS[m[2]!]! : undefined;
    };
    r.p50Ms = lat("50");
    r.p99Ms = lat("99");
  }
  if (!o.allowErrors && (r.non2xx || r.socketErrors || !r.requests)) {
    throw new Error(`${url}: ${r.non2xx} non-2xx responses, ${r.socketErrors} socket errors, ${r.requests} requests\n${out}`);
  }
  return r;
}

/** Rounds of wrk against several servers, the order alternating each round; the median of each. */
export async function wrkRounds(rounds: number, targets: Record<string, () => Promise<WrkResult>>): Promise<Record<string, WrkResult>> {
  const names = Object.keys(targets);
  const all: Record<string, WrkResult[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (let r = 0; r < rounds; r++) {
    for (const n of r % 2 ? [...names].reverse() : names) all[n]!.push(await targets[n]!());
  }
  return Object.fromEntries(names.map((n) => {
    const rs = all[n]!.sort((a, b) => a.rps - b.rps);
    return [n, rs[Math.floor((rs.length - 1) / 2)]!];
  }));
}

// ---------------------------------------------------------------- hyperfine

/** `hyperfine` on one shell command; the median wall time in seconds. */
export async function hyperfine(s: Scope, cmd: string, o: { runs: number; warmup?: number; prepare?: string }): Promise<{ median: number; mean: number; times: number[] }> {
  const dir = s.tempDir("ocireg-bench-hf-");
  const json = join(dir, "out.json");
  await sh(["hyperfine", "--style", "none", "--runs", String(o.runs), "--warmup", String(o.warmup ?? 0),
    ...(o.prepare ? ["--prepare", o.prepare] : []), "--export-json", json, cmd]);
  const r = JSON.parse(readFileSync(json, "utf8")).results[0] as { median: number; mean: number; times: number[] };
  return { median: r.median, mean: r.mean, times: r.times };
}

// ---------------------------------------------------------------- baselines

/** nginx serving `root` as static files, as TESTING.md says: root, one worker, sendfile, no access log. */
export async function startNginx(s: Scope, root: string): Promise<{ url: string }> {
  const dir = s.tempDir("ocireg-bench-nginx-");
  const port = await freePort();
  // keepalive_requests: nginx would close each connection after 1,000 requests; the cache never does.
  writeFileSync(join(dir, "nginx.conf"), `user root; worker_processes 1; daemon off; pid ${dir}/nginx.pid; error_log ${dir}/error.log;
events { worker_connections 4096; }
http { access_log off; sendfile on; keepalive_requests 100000000; default_type application/octet-stream;
  server { listen 127.0.0.1:${port}; root ${root}; } }\n`);
  const proc = track(Bun.spawn(["nginx", "-c", join(dir, "nginx.conf"), "-e", join(dir, "error.log")], { stdout: "ignore", stderr: "ignore" }));
  s.add(() => stopProcess(proc, "SIGQUIT"));
  const url = `http://127.0.0.1:${port}`;
  await waitFor("nginx", async () => {
    if (proc.exitCode !== null) throw new Error(`nginx exited: ${readFileSync(join(dir, "error.log"), "utf8")}`);
    return (await fetch(url)).status > 0;
  });
  return { url };
}

export interface Registry {
  base: string;
  proc: Subprocess;
  /** Requests in the access log so far, as `METHOD path` (only with `accessLog`). */
  requests(): string[];
}

/**
 * CNCF distribution (Debian's docker-registry) on `addr` (port 80 of a 127.0.4.x address). Its
 * output goes straight to files: the benchmark process does not pump its access log while it measures.
 * `extraYaml` adds top-level sections (`proxy:` makes it a pull-through cache of another).
 */
export async function startRegistry(s: Scope, addr: string, o: { accessLog?: boolean; extraYaml?: string } = {}): Promise<Registry> {
  const dir = s.tempDir("ocireg-bench-dist-");
  writeFileSync(join(dir, "config.yml"), `version: 0.1
log:
  level: error
  accesslog:
    disabled: ${!o.accessLog}
storage:
  filesystem:
    rootdirectory: ${join(dir, "data")}
http:
  addr: ${addr}:80
${o.extraYaml ?? ""}`);
  const listening = () => Bun.connect({ hostname: addr, port: 80, socket: { data() {} } }).then((c) => (c.end(), true), () => false);
  if (await listening()) throw new Error(`${addr}:80 is already in use; stop whatever listens there`);
  const log = join(dir, "access.log");
  const proc = track(Bun.spawn(["docker-registry", "serve", join(dir, "config.yml")], { stdout: Bun.file(log), stderr: Bun.file(join(dir, "error.log")) }));
  s.add(() => stopProcess(proc));
  await waitFor(`distribution on ${addr}`, async () => {
    if (proc.exitCode !== null) throw new Error(`docker-registry exited: ${readFileSync(join(dir, "error.log"), "utf8")}`);
    return listening();
  });
  return {
    base: `http://${addr}`, proc,
    requests: () => [...readFileSync(log, "utf8").matchAll(/\] "([A-Z]+) (\S+) HTTP\/[\d.]+"/g)].map((m) => `${m[1]} ${m[2]}`),
  };
}
