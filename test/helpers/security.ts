// Small helpers shared by the security e2e tests (test/e2e/security-*.test.ts).
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startCache, type RunningCache } from "./binary.ts";

export interface Got {
  status: number;
  headers: Headers;
  /** The whole body, or null when reading it failed (aborted, reset, timed out). */
  body: Uint8Array | null;
  /** Why the request or the body failed. */
  error?: string;
  /** Milliseconds until the body was read (or the request failed). */
  ms: number;
}

/** GETs `url` and reads the whole body within `timeoutMs`; never throws. */
export async function get(url: string, init: RequestInit = {}, timeoutMs = 10_000): Promise<Got> {
  const started = performance.now();
  const signal = AbortSignal.timeout(timeoutMs);
  let res: Response;
  try {
    res = await fetch(url, { ...init, signal });
  } catch (err) {
    return { status: 0, headers: new Headers(), body: null, error: String(err), ms: performance.now() - started };
  }
  try {
    const body = new Uint8Array(await res.arrayBuffer());
    return { status: res.status, headers: res.headers, body, ms: performance.now() - started };
  } catch (err) {
    return { status: res.status, headers: res.headers, body: null, error: String(err), ms: performance.now() - started };
  }
}

/** `errors[0].message` of a spec error body, or "". */
export function errorMessage(g: Got): string {
  try {
    return (JSON.parse(new TextDecoder().decode(g.body ?? new Uint8Array())) as { errors: Array<{ message: string }> }).errors[0]!.message;
  } catch {
    return "";
  }
}

/** `errors[0].code` of a spec error body, or "". */
export function errorCode(g: Got): string {
  try {
    return (JSON.parse(new TextDecoder().decode(g.body ?? new Uint8Array())) as { errors: Array<{ code: string }> }).errors[0]!.code;
  } catch {
    return "";
  }
}

/** Every file under the store's manifests/, blobs/ and repositories/, relative and sorted. */
export function storedFiles(store: string): string[] {
  const out: string[] = [];
  for (const top of ["manifests", "blobs", "repositories"]) {
    const dir = join(store, top);
    if (!existsSync(dir)) continue;
    for (const e of readdirSync(dir, { recursive: true, withFileTypes: true })) {
      if (e.isFile()) out.push(join(e.parentPath, e.name).slice(store.length + 1));
    }
  }
  return out.sort();
}

/** Starts caches with a YAML config each in `dir` and remembers them so one call stops them all. */
export function cacheFactory(dir: string) {
  const started: RunningCache[] = [];
  let n = 0;
  return {
    async start(yaml: string, args: string[] = []) {
      n++;
      const config = join(dir, `cache-${n}.yml`);
      writeFileSync(config, yaml);
      const store = join(dir, `store-${n}`);
      const cache = await startCache(["--config-file", config, "--image-path", store, ...args]);
      started.push(cache);
      return { cache, store, config };
    },
    async stopAll(signal: NodeJS.Signals = "SIGTERM") {
      for (const c of started) await c.stop(signal);
    },
  };
}
