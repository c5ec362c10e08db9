// What a storage back-end must do for the layout (layout.ts): keep bytes under "/"-separated keys
// the layout has already checked. A driver knows nothing of digests, records or listing rules;
// it keeps its own strengths (sendfile, multipart uploads, presigned URLs) behind `serve` and
// `openWriter`. A new back-end is one file implementing this.
import type { StoredBlob } from "./types.ts";
import type { WriterBackend } from "./writer.ts";

export type { WriterBackend };

/**
 * An object as read for a conditional write: its bytes (null when absent) and its version (S3's
 * ETag, a hash of the file's bytes), which changes with every write. A null version means there is
 * no object: only a create can follow.
 */
export interface Versioned {
  bytes: Uint8Array | null;
  version: string | null;
}

export interface DriverEntry {
  key: string;
  /** Bytes; only when the listing asked for sizes (0 otherwise). */
  size: number;
}

export interface Driver {
  /** Where the store is, for messages. */
  readonly location: string;
  /**
   * Prepares the back-end (a directory back-end creates `dirs`) and removes leftovers of
   * interrupted writes by processes that are gone; returns how many.
   */
  init(dirs: readonly string[]): Promise<number>;
  /** The object's bytes; null when absent. */
  read(key: string): Promise<Uint8Array | null>;
  /** Several small objects (records, while walking the store); null for each that is absent. */
  readMany(keys: readonly string[]): Promise<Array<Uint8Array | null>>;
  /** Stores bytes under `key` at once: a reader sees the old object or the new one, never a part. */
  put(key: string, bytes: Uint8Array): Promise<void>;
  /**
   * Stores bytes under `key` only if nothing is there, atomically against every other writer
   * (S3 `If-None-Match: *`, link(2)): true when this call created it, false when it existed.
   */
  create?(key: string, bytes: Uint8Array): Promise<boolean>;
  /** The object and its version, read at once (one request), for putIf and removeIf. */
  readVersioned(key: string): Promise<Versioned>;
  /**
   * Stores bytes under `key` only if the object is still at `version` (null: only if absent),
   * atomically against every other writer (S3 `If-Match` / `If-None-Match: *`, a locked
   * compare-and-rename): false when another writer changed it first; nothing is written then.
   */
  putIf(key: string, bytes: Uint8Array, version: string | null): Promise<boolean>;
  /** Removes the object only if it is still at `version`: false when another writer changed it first. */
  removeIf(key: string, version: string): Promise<boolean>;
  /**
   * Optional: removes the object only if `test` holds of its bytes as read, atomically against
   * every conditional writer (the directory driver's lock): one read instead of readVersioned and
   * removeIf's own. False when it is absent or the test fails.
   */
  removeWhen?(key: string, test: (bytes: Uint8Array) => boolean): Promise<boolean>;
  /** Several processes on different hosts may use this back-end at once (object storage shared by replicas). */
  readonly shared?: boolean;
  /** Size and last-modified time (ms); null when absent. */
  stat(key: string): Promise<{ size: number; modified: number } | null>;
  /** The object as something to send (a file the kernel sends, an S3 object, a redirect); null when absent. */
  serve(key: string): Promise<StoredBlob | null>;
  /** Removes an object; removing what is absent is fine. */
  remove(key: string): Promise<void>;
  /** Every object whose key starts with `prefix` ("" or ending in "/"), in key order; sizes when asked. */
  list(prefix: string, sizes?: boolean): AsyncIterable<DriverEntry>;
  /** The filesystem under the store (statfs); absent or null for object storage. */
  space?(): Promise<{ total: number; free: number } | null>;
  /** Where bytes for `key` go while written; publish() makes them visible under `key` at once. */
  openWriter(key: string): Promise<WriterBackend>;
}
