// Runs the compiled `dist/ociregistry` the way users do, on a free port chosen by the kernel.
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
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
  /**
   * Send the process's output straight to this file instead of a pipe (benchmarks: the measuring
   * process then does not read every access-log line while it measures, as a container runtime's
   * log file would not). `output()` reads the file.
   */
  logFile?: string;
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
  const file = opts.logFile;
  // One descriptor, shared by stdout and stderr: neither overwrites the other.
  const fd = file ? openSync(file, "w") : undefined;
  const proc = track(Bun.spawn([BINARY, "serve", "--host", "127.0.0.1", "--port", "0", ...policy, ...delay, ...args], {
    stdout: fd ?? "pipe", stderr: fd ?? "pipe", env: { ...process.env, ...env },
  }));
  if (fd !== undefined) closeSync(fd);
  let piped = "";
  const collect = async (s: ReadableStream<Uint8Array>) => {
    for await (const c of s) piped += new TextDecoder().decode(c);
  };
  if (!file) {
    void collect(proc.stdout as ReadableStream<Uint8Array>);
    void collect(proc.stderr as ReadableStream<Uint8Array>);
  }
  const current = () => (file ? readFileSync(file, "utf8") : piped);
  const until = Date.now() + 15_000;
  let port = 0;
  while (!port) {
    const out = current();
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
    output: current,
    async settledOutput() {
      for (let len = -1; len !== current().length;) {
        len = current().length;
        await Bun.sleep(100);
      }
      return current();
    },
    stop: (signal = "SIGTERM") => stopProcess(proc, signal),
  };
}
