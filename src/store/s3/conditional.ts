// Conditional writes on S3, for records several replicas update at once: a GET that returns the
// bytes with their ETag, a PUT with `If-Match: <etag>` (or `If-None-Match: *`) that S3 refuses with
// 412 when another writer came first, and a conditional removal. S3 (and RGW 16) has no
// conditional DELETE, so a removal first replaces the object, under `If-Match`, with a tombstone
// (readers take it for absent, creators wait for it to go), then deletes it.
import type { Versioned } from "../driver.ts";
import { StoreError } from "../types.ts";
import { s3Request, type S3Access } from "./sigv4.ts";
import { unavailable } from "./writer.ts";

/** A tombstone's bytes start so; no record (JSON) or manifest can. */
const TOMBSTONE = "\0ociregistry-removed ";
const TOMBSTONE_BYTES = new TextEncoder().encode(TOMBSTONE);
/**
 * A tombstone older than this belongs to a removal that stopped between its two requests (the
 * process died): it may be overwritten. A live remover deletes it within one round trip.
 */
export const TOMBSTONE_MS = 30_000;

/** Whether bytes read from S3 are a removal in progress (read as absent). */
export function isTombstone(bytes: Uint8Array | null): boolean {
  if (!bytes || bytes.byteLength < TOMBSTONE_BYTES.byteLength) return false;
  for (let i = 0; i < TOMBSTONE_BYTES.byteLength; i++) if (bytes[i] !== TOMBSTONE_BYTES[i]) return false;
  return true;
}

/** Bytes with tombstones read as absent. */
export const unlessTombstone = (bytes: Uint8Array | null) => (isTombstone(bytes) ? null : bytes);

async function send(a: S3Access, method: string, key: string, what: string, r: Parameters<typeof s3Request>[3] = {}): Promise<Response> {
  try {
    return await s3Request(a, method, key, r);
  } catch (err) {
    throw unavailable(err, `${what} ${key}`);
  }
}

export async function readVersioned(a: S3Access, key: string, now: () => number): Promise<Versioned> {
  const res = await send(a, "GET", key, "reading");
  if (res.status === 404) {
    await res.body?.cancel();
    return { bytes: null, version: null };
  }
  if (!res.ok) {
    await res.body?.cancel();
    throw new StoreError("unavailable", `S3 reading ${key}: HTTP ${res.status}`);
  }
  const bytes = new Uint8Array(await res.arrayBuffer());
  // Unquoted: RGW 16 compares If-Match with the bare hex (a quoted ETag, as HTTP spells it, never
  // matches there: every update would lose); MinIO and AWS S3 take either.
  const version = res.headers.get("etag")?.replaceAll('"', "");
  if (!version) throw new StoreError("unavailable", `S3 reading ${key}: no ETag in the answer; the service cannot do conditional writes`);
  if (!isTombstone(bytes)) return { bytes, version };
  // Being removed: absent. A fresh tombstone makes creators wait (their create fails until it is
  // deleted); a stale one, whose remover died, is overwritten like any version.
  const at = Date.parse(new TextDecoder().decode(bytes.subarray(TOMBSTONE_BYTES.byteLength)).trim());
  return { bytes: null, version: Number.isNaN(at) || now() - at > TOMBSTONE_MS ? version : null };
}

/** PUT with `If-Match` (or `If-None-Match: *`): false when S3 refuses it for another writer's change. */
export async function putIf(a: S3Access, key: string, bytes: Uint8Array, version: string | null): Promise<boolean> {
  const headers: Record<string, string> = version === null ? { "if-none-match": "*" } : { "if-match": version };
  const res = await send(a, "PUT", key, "writing", { body: bytes, headers });
  await res.body?.cancel();
  // RGW 16 answers a conditional PUT that lost a race inside the cluster (another writer's landed
  // first and cancelled ours) with 500 UnknownError, not 412: of 4 racing PUTs on one version,
  // one 200 and three 500s, 30 rounds in a row, and nothing of the 500s is stored. Taken as lost:
  // the caller reads again and retries (updates are merges that may be applied again safely).
  if (res.status === 500) return false;
  // 412: changed (or created) by another writer; 409: S3 is writing the key for another at this
  // moment; 404 to an If-Match: removed meanwhile (some services; a missing bucket is 404 too, so
  // only there).
  if (res.status === 412 || res.status === 409 || (res.status === 404 && version !== null)) return false;
  if (!res.ok) throw new StoreError("unavailable", `S3 writing ${key} conditionally: HTTP ${res.status}`);
  return true;
}

/**
 * Removes `key` if it is still at `version`: a tombstone replaces it under `If-Match`, then the
 * key is deleted. A writer that read the old version loses its own conditional write; one that
 * reads the tombstone waits for the delete.
 */
export async function removeIf(a: S3Access, key: string, version: string, now: () => number): Promise<boolean> {
  const tombstone = new TextEncoder().encode(`${TOMBSTONE}${new Date(now()).toISOString()}\n`);
  if (!(await putIf(a, key, tombstone, version))) return false;
  const res = await send(a, "DELETE", key, "removing");
  await res.body?.cancel();
  if (!res.ok && res.status !== 404) throw new StoreError("unavailable", `S3 removing ${key}: HTTP ${res.status} (a tombstone stays; it is overwritten after ${TOMBSTONE_MS / 1000} s)`);
  return true;
}
