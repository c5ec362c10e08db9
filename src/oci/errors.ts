// The distribution spec's error codes and the one error type every failed request ends in.

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
  constructor(
    readonly code: ErrorCode,
    message: string,
    opts: { status?: number; detail?: unknown; headers?: Record<string, string> } = {},
  ) {
    super(message);
    this.name = "RegistryError";
    this.status = opts.status ?? ERROR_CODES[code];
    this.detail = opts.detail;
    this.headers = opts.headers;
  }
  readonly detail: unknown;
  readonly headers: Record<string, string> | undefined;

  toResponse(method = "GET"): Response {
    const body = JSON.stringify({ errors: [{ code: this.code, message: this.message, detail: this.detail ?? null }] });
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
