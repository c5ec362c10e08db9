// Request ids and the access log: one line per request on the main port (request id, client,
// method, path, status, bytes, duration, how the cache served it, upstream), text or JSON.
import type { Exchange } from "../registry/router.ts";
import { lineWriter, type LineWriter, type Logger } from "../log.ts";

/** A request id a client may choose: short, and nothing a log line or a header could trip on. */
const CLIENT_ID = /^[A-Za-z0-9._:-]{1,128}$/;
/** Longest path the access log shows; a longer one is cut and marked. */
export const MAX_LOGGED_PATH = 512;
const ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";
const ID_LENGTH = 12;

/** Random bytes drawn in bulk: one system call per few hundred ids, not one per request. */
let pool = new Uint8Array(0);
let used = 0;

/** A fresh id: 12 characters of 32 (60 random bits), enough to tell apart every request of a log. */
export function newRequestId(): string {
  if (used + ID_LENGTH > pool.length) (pool = crypto.getRandomValues(new Uint8Array(4096))), (used = 0);
  let id = "";
  for (let i = 0; i < ID_LENGTH; i++) id += ID_ALPHABET[pool[used++]! & 31];
  return id;
}

/** The client's `X-Request-Id` when it is at most 128 of `[A-Za-z0-9._:-]`; otherwise a new one. */
export function requestId(given: string | null): string {
  return given !== null && CLIENT_ID.test(given) ? given : newRequestId();
}

/** What one access line says. */
export interface AccessEntry {
  id: string;
  client: string | undefined;
  method: string;
  /** The path and query as the client sent them (escaped and cut when logged). */
  path: string;
  status: number;
  /** Body bytes of the answer (its Content-Length; 0 for HEAD); null when streamed without a known length. */
  bytes: number | null;
  durationMs: number;
  exchange: Exchange | undefined;
}

/** The path as logged: at most MAX_LOGGED_PATH characters, a cut one ending in `...`. */
export function loggedPath(path: string): string {
  return path.length > MAX_LOGGED_PATH ? `${path.slice(0, MAX_LOGGED_PATH)}...` : path;
}

/** Writes access lines at info through the logger's writer, batched (any other logger gets plain messages). */
export function createAccessLog(log: Logger): (e: AccessEntry) => void {
  const writer: LineWriter | null = lineWriter(log);
  const fallback = log.withTag("access");
  return (e) => {
    const path = loggedPath(e.path);
    const fields = {
      request_id: e.id, client: e.client ?? null, method: e.method, path, status: e.status,
      bytes: e.bytes, duration_ms: Math.round(e.durationMs * 100) / 100,
      cache: e.exchange?.cache ?? null, upstream: e.exchange?.upstream ?? null,
    };
    if (writer) writer.fields("info", "access", `${e.method} ${path} ${e.status}`, fields, true);
    else fallback.info(`${e.method} ${path} ${e.status}`);
  };
}
