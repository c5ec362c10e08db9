// Runs the compiled `dist/ociregistry` the way users do, on a free port chosen by the kernel.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { stopProcess, track } from "./procs.ts";

export const BINARY = join(import.meta.dir, "../../dist/ociregistry");

export interface RunningCache {
  port: number;
  url: string;
  proc: Subprocess;
  /** Everything the process has logged so far. */
  output(): string;
  /** The log once it has been quiet for 100 ms: lines logged before a reply may still be in the pipe. */
  settledOutput(): Promise<string>;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export function requireBinary() {
  if (!existsSync(BINARY)) throw new Error(`${BINARY} is missing: run \`bun run build\` first (npm test does)`);
}

export interface StartOptions {
  /**
   * Start with the real default upstream policy (`public`). Otherwise `--upstreams any` is added
   * unless the args or their config file set a policy: most tests name loopback upstreams, which
   * the default refuses.
   */
  defaultPolicy?: boolean;
}

/** Whether `serve` args (or the config file they name) already choose an upstream policy. */
export function choosesPolicy(args: string[]): boolean {
  return args.some((a) => a === "--upstreams" || a.startsWith("--upstreams=")) || configSets(args, "upstreams");
}

/** Whether the config file the args name sets a top-level key. */
function configSets(args: string[], key: string): boolean {
  const i = args.findIndex((a) => a === "--config-file" || a.startsWith("--config-file="));
  if (i < 0) return false;
  const file = args[i]!.includes("=") ? args[i]!.slice("--config-file=".length) : args[i + 1];
  try {
    return !!file && new RegExp(`^${key}\\s*:`, "m").test(readFileSync(file, "utf8"));
  } catch {
    return false;
  }
}

/** Starts `ociregistry [global...] serve --port 0 ...args` and waits until it listens. */
export async function startCache(args: string[], env: Record<string, string> = {}, opts: StartOptions = {}): Promise<RunningCache> {
  requireBinary();
  const policy = opts.defaultPolicy || choosesPolicy(args) ? [] : ["--upstreams", "any"];
  // Tests stop caches with SIGTERM: without a delay unless they ask for one (rollout tests do).
  const delay = args.some((a) => a.startsWith("--shutdown-delay")) || configSets(args, "shutdownDelay") ? [] : ["--shutdown-delay", "0s"];
  const proc = track(Bun.spawn([BINARY, "serve", "--host", "127.0.0.1", "--port", "0", ...policy, ...delay, ...args], {
    stdout: "pipe", stderr: "pipe", env: { ...process.env, ...env },
  }));
  let out = "";
  const collect = async (s: ReadableStream<Uint8Array>) => {
    for await (const c of s) out += new TextDecoder().decode(c);
  };
  void collect(proc.stdout as ReadableStream<Uint8Array>);
  void collect(proc.stderr as ReadableStream<Uint8Array>);
  const until = Date.now() + 15_000;
  let port = 0;
  while (!port) {
    const m = out.match(/on port (\d+)/);
    if (m) port = Number(m[1]);
    else if (proc.exitCode !== null) throw new Error(`ociregistry exited ${proc.exitCode}:\n${out}`);
    else if (Date.now() > until) {
      proc.kill("SIGKILL");
      throw new Error(`ociregistry did not start:\n${out}`);
    } else await Bun.sleep(20);
  }
  return {
    port, url: `http://127.0.0.1:${port}`, proc,
    output: () => out,
    async settledOutput() {
      for (let len = -1; len !== out.length;) {
        len = out.length;
        await Bun.sleep(100);
      }
      return out;
    },
    stop: (signal = "SIGTERM") => stopProcess(proc, signal),
  };
}
