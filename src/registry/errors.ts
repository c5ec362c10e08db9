// The one place that turns failures into HTTP: the distribution spec's error codes, the one error
// type every failed request ends in, and the mapping from the cache's typed errors to statuses.
import { CacheError, type CacheSubject } from "../cache/index.ts";
import { createOncePer } from "../lib/bounded-map.ts";
import { StoreError } from "../store/types.ts";

export const ERROR_CODES = {
  BLOB_UNKNOWN: 404,
  BLOB_UPLOAD_INVALID: 400,
  BLOB_UPLOAD_UNKNOWN: 404,
  DIGEST_INVALID: 400,
  MANIFEST_BLOB_UNKNOWN: 404,
  MANIFEST_INVALID: 400,
  MANIFEST_UNKNOWN: 404,
  NAME_INVALID: 400,
  NAME_UNKNOWN: 404,
  SIZE_INVALID: 400,
  UNAUTHORIZED: 401,
  DENIED: 403,
  UNSUPPORTED: 405,
  TOOMANYREQUESTS: 429,
  /** Not one of the spec's codes: distribution's answer to an unexpected failure. */
  UNKNOWN: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class RegistryError extends Error {
  readonly status: number;
  readonly headers: Record<string, string> | undefined;
  constructor(
    readonly code: ErrorCode,
    message: string,
    opts: { status?: number; headers?: Record<string, string> } = {},
  ) {
    super(message);
    this.name = "RegistryError";
    this.status = opts.status ?? ERROR_CODES[code];
    this.headers = opts.headers;
  }

  toResponse(method = "GET"): Response {
    const body = JSON.stringify({ errors: [{ code: this.code, message: this.message, detail: null }] });
    return new Response(method === "HEAD" ? null : body, {
      status: this.status,
      headers: {
        "Content-Type": "application/json",
        "Docker-Distribution-API-Version": "registry/2.0",
        "X-Content-Type-Options": "nosniff",
        ...(method === "HEAD" ? {} : { "Content-Length": String(Buffer.byteLength(body)) }),
        ...this.headers,
      },
    });
  }
}

const UNKNOWN_CODE: Record<CacheSubject, ErrorCode> = { manifest: "MANIFEST_UNKNOWN", blob: "BLOB_UNKNOWN", repository: "NAME_UNKNOWN" };

/**
 * The error a client sees for a cache failure. The spec has no code for "upstream down", so the
 * code names what could not be had and the status says why: 404 when nobody has it, 401/403 when
 * the upstream refused us, 429 when it rate-limits, 502 for an upstream that failed or
 * misbehaved, 503 when it is saturated, 504 for a timeout. Anything else is null: unexpected.
 */
export function toRegistryError(err: unknown): RegistryError | null {
  if (err instanceof RegistryError) return err;
  // The store could not be read or written (a full disk, S3 refusing or down): the client may retry.
  if (err instanceof StoreError && err.failure === "unavailable") return new RegistryError("UNKNOWN", "the cache's store is unavailable; try again (the cache's log has the details)", { status: 503, headers: { "Retry-After": "5" } });
  if (err instanceof StoreError && err.failure === "full") return new RegistryError("UNKNOWN", "the cache's store is full; try again (the cache's log has the details)", { status: 503, headers: { "Retry-After": "5" } });
  if (!(err instanceof CacheError)) return null;
  const code = UNKNOWN_CODE[err.subject];
  switch (err.failure) {
    case "not-found":
    case "air-gapped":
      return new RegistryError(code, err.message);
    case "refused":
      return err.status === 403 ? new RegistryError("DENIED", err.message) : new RegistryError("UNAUTHORIZED", err.message);
    case "rate-limited":
      // Clients are told when to come back; until then nothing is sent upstream.
      return new RegistryError("TOOMANYREQUESTS", err.message, { headers: { "Retry-After": String(Math.max(1, Math.ceil((err.retryAfterMs ?? 60_000) / 1000))) } });
    case "unsupported":
      return new RegistryError("UNSUPPORTED", err.message, { status: 415 });
    case "invalid":
      return new RegistryError(err.subject === "manifest" ? "MANIFEST_INVALID" : code, err.message, { status: 502 });
    case "timeout":
      return new RegistryError(code, err.message, { status: 504 });
    case "busy":
    case "full":
      return new RegistryError(code, err.message, { status: 503 });
    case "unreachable":
    case "policy":
      return new RegistryError(code, err.message, { status: 502 });
  }
}

/**
 * Answers failures nobody expected: the client gets the spec's generic `500 UNKNOWN` (no stack, no
 * paths); the operator one log line per kind of failure (error class and where it was thrown) a minute.
 */
export function createUnexpected(log: (msg: string) => void, firstTime = createOncePer(60_000)) {
  return (err: unknown, what: string, method = "GET"): Response => {
    const e = err instanceof Error ? err : new Error(String(err));
    const at = e.stack?.split("\n").find((l) => l.trim().startsWith("at "))?.trim() ?? "at an unknown place";
    if (firstTime(`${e.name} ${at}`)) log(`${what}: unexpected ${e.name}: ${JSON.stringify(e.message.slice(0, 300))} ${at} (said once a minute)`);
    return new RegistryError("UNKNOWN", "internal error; the cache's log has the details").toResponse(method);
  };
}

/** Whether a path holds a percent-escape that does not decode (`%E0%A4%A`, `%zz`). */
export function hasMalformedEscape(path: string): boolean {
  if (!path.includes("%")) return false;
  try {
    decodeURIComponent(path);
    return false;
  } catch {
    return true;
  }
}

/** The 400 of a path with a malformed percent-escape. */
export function malformedEscape(): RegistryError {
  return new RegistryError("NAME_INVALID", "the request path holds a malformed percent-escape; send % as %25 and escapes of whole UTF-8 characters only");
}
