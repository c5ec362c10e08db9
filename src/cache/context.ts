// What the pull-through policy modules share: the store, the upstream client, settings, clock,
// and the in-memory views that keep the hot path off the disk.
import type { Store, TagRecord } from "../store/types.ts";
import type { Upstreams } from "../upstream/client.ts";
import { UpstreamError } from "../upstream/errors.ts";
import type { BoundedMap } from "../oci/bounded-map.ts";
import { RegistryError, type ErrorCode } from "../oci/errors.ts";
import { ManifestMemory } from "./memory.ts";

export interface CacheLogger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
}

export interface CacheOptions {
  store: Store;
  upstreams: Upstreams;
  /** Never contact an upstream. */
  airGapped: boolean;
  /** A cached tag is checked against its upstream when it was last checked longer ago than this. */
  revalidateAfterMs: number;
  /** Longest wait for upstream data (headers, or the next chunk of a body). */
  pullTimeoutMs: number;
  /** Bytes of manifests kept in memory. */
  manifestMemoryBytes?: number;
  /** Per-tag freshness: first rule whose pattern matches `<upstream>/<repository>:<tag>` wins. */
  tagPolicies?: Array<{ match: RegExp; revalidateAfterMs: number }>;
  log: CacheLogger;
  now?: () => number;
}

export interface CacheContext extends Required<Omit<CacheOptions, "manifestMemoryBytes">> {
  /** Sizes that an upstream's manifests declare for the blobs they reference, by `upstream digest`. */
  declaredSizes: BoundedMap<string, number>;
  memory: ManifestMemory;
  /** Tag records by `upstream/repository:tag`, loaded lazily from the store. */
  tags: Map<string, TagRecord>;
  /** Tag records whose lastPulled/checked changed and are not yet written. */
  dirty: Set<string>;
}

export function tagKey(upstream: string, repository: string, tag: string): string {
  return `${upstream}/${repository}:${tag}`;
}

/**
 * Turns an upstream failure into the error a client sees. The spec has no code for "upstream
 * down", so the code names what could not be found (`code`) and the status says why: 502 for an
 * unreachable or misbehaving upstream, 504 for a timeout, 401/403 when it refused us.
 */
export function upstreamFailure(err: unknown, code: ErrorCode): RegistryError {
  if (err instanceof RegistryError) return err;
  if (err instanceof UpstreamError) {
    if (err.failure === "denied") {
      return err.status === 403 ? new RegistryError("DENIED", err.message) : new RegistryError("UNAUTHORIZED", err.message);
    }
    const status = err.failure === "timeout" ? 504 : err.failure === "busy" ? 503 : 502;
    return new RegistryError(code, err.message, { status });
  }
  return new RegistryError(code, `upstream request failed: ${(err as Error)?.message ?? String(err)}`, { status: 502 });
}

/** Content-Length of a response, or null when it is absent or not a number. */
export function contentLength(res: Response): number | null {
  const v = res.headers.get("content-length");
  return v !== null && /^\d+$/.test(v) ? Number(v) : null;
}

/**
 * The error a client sees when an upstream answered a manifest or blob request with a status
 * other than success: 404 stays 404, 429 stays 429, 401/403 keep their meaning, the rest is 502.
 */
export function upstreamStatusError(status: number, upstream: string, where: string, code: "MANIFEST_UNKNOWN" | "BLOB_UNKNOWN"): RegistryError {
  if (status === 404) return new RegistryError(code, `${code === "BLOB_UNKNOWN" ? "blob" : "manifest"} unknown to upstream: ${where}`);
  if (status === 429) return new RegistryError("TOOMANYREQUESTS", `upstream ${upstream} is rate limiting requests`);
  const message = `upstream ${upstream} answered HTTP ${status} for ${where}`;
  if (status === 401) return new RegistryError("UNAUTHORIZED", message);
  if (status === 403) return new RegistryError("DENIED", message);
  return new RegistryError(code, message, { status: 502 });
}
