// The cache's own failures, in its own words: what could not be had and why. The registry layer
// alone turns them into HTTP statuses and the spec's error codes (registry/errors.ts).
import { UpstreamError } from "../upstream/errors.ts";

export type CacheFailure =
  /** Neither the store nor the upstream has it (an upstream 404). */
  | "not-found"
  /** Not in the store, and the cache may not ask an upstream. */
  | "air-gapped"
  /** The upstream refused our credentials or certificate (`status` 401 or 403). */
  | "refused"
  /** Could not connect, the connection broke, or the upstream answered with an error. */
  | "unreachable"
  | "timeout"
  /** The upstream has as many requests open as it may. */
  | "busy"
  | "rate-limited"
  /** The upstream sent content that is not what was asked for: wrong digest, size or type, too large, not a manifest. */
  | "invalid"
  /** The upstream pointed somewhere the cache does not go (another scheme, a downgrade, an internal address). */
  | "policy"
  /** Content the cache refuses to serve on purpose (Docker schema 1). */
  | "unsupported"
  /** The store has no room (its bounds) and nothing can be evicted: nothing was kept. */
  | "full";

/** What a failed request was about, so the registry can pick the spec's code. */
export type CacheSubject = "manifest" | "blob" | "repository";

export class CacheError extends Error {
  constructor(
    readonly failure: CacheFailure,
    readonly subject: CacheSubject,
    message: string,
    /** The upstream's HTTP status, when it sent one. */
    readonly status?: number,
    /** For "rate-limited": when the upstream may be asked again. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = "CacheError";
  }
}

/** An upstream client failure (or anything unexpected from it) as the cache's failure. */
export function fromUpstream(err: unknown, subject: CacheSubject): CacheError {
  if (err instanceof CacheError) return err;
  if (err instanceof UpstreamError) {
    const failure: CacheFailure = err.failure === "denied" ? "refused"
      : err.failure === "timeout" ? "timeout"
      : err.failure === "busy" ? "busy"
      : err.failure === "policy" ? "policy"
      : err.failure === "rate-limited" ? "rate-limited"
      : err.failure === "too-large" || err.failure === "protocol" ? "invalid"
      : "unreachable";
    return new CacheError(failure, subject, err.message, err.status, err.retryAfterMs);
  }
  return new CacheError("unreachable", subject, `upstream request failed: ${(err as Error)?.message ?? String(err)}`);
}

/** An upstream's non-success answer to a manifest or blob request. */
export function fromUpstreamStatus(status: number, upstream: string, where: string, subject: CacheSubject): CacheError {
  if (status === 404) return new CacheError("not-found", subject, `${subject} unknown to upstream: ${where}`, status);
  if (status === 429) return new CacheError("rate-limited", subject, `upstream ${upstream} is rate limiting requests`, status);
  const message = `upstream ${upstream} answered HTTP ${status} for ${where}`;
  if (status === 401 || status === 403) return new CacheError("refused", subject, message, status);
  return new CacheError("unreachable", subject, message, status);
}

/** A failure of one part of a larger pull, named in front; a CacheError keeps its failure and status. */
/** What `load` (or any pull into the store) meets when the store has no room for `what`. */
export function storeFull(subject: CacheSubject, what: string): CacheError {
  return new CacheError("full", subject, `the store is full: no room for ${what} and nothing can be evicted (raise maxSize, free the disk, or unpin images)`);
}

export function inPart(err: unknown, part: string): Error {
  if (err instanceof CacheError) return new CacheError(err.failure, err.subject, `${part}: ${err.message}`, err.status, err.retryAfterMs);
  return new Error(`${part}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
}
