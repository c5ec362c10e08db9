// The store contract: what the cache needs from a place that keeps blobs, manifests and tag
// records. The store owns every write (a writer that verifies before anything becomes visible)
// and hands out content as Blobs (sliceable for ranges; for the directory store a Bun.file the
// kernel sends). No file path, file handle or back-end detail crosses it. One layout (layout.ts)
// implements it over drivers (driver.ts): fs.ts (a directory), memory.ts (tests), s3/ (object
// storage, several replicas on one bucket).

export interface TagRecord {
  /** Upstream namespace as clients name it, e.g. `docker.io`, `registry.k8s.io`, `127.0.0.2`. */
  upstream: string;
  /** Repository within the upstream, e.g. `library/nginx`. */
  repository: string;
  /** The tag, or the digest itself for an image pinned by digest (`load host/repo@sha256:…`). */
  tag: string;
  digest: string;
  mediaType: string;
  /** Size of the manifest in bytes. */
  size: number;
  /** When the tag was first cached (ISO 8601). */
  created: string;
  /** When a client last pulled the tag (ISO 8601). */
  lastPulled: string;
  /** When the tag was last confirmed against its upstream (ISO 8601). */
  checked: string;
  /** Never evicted (`load --pin`, the admin API); absent means not pinned. */
  pinned?: boolean;
  /**
   * What the image manifest `digest` needs, kept so `list`, `prune` and `verify` need not read it
   * again: written with the record (pull, load, archive import), re-derived by `verify --repair`.
   * Absent for an index (what it needs grows as platforms are pulled), for an image whose manifest
   * declares no usable size or names something that is not a digest, and in records written before
   * it existed: readers then read the manifest.
   */
  image?: ImageSummary;
}

/** An image manifest's needs, from its own bytes: they never change for a digest. */
export interface ImageSummary {
  /** The manifest summarized: a summary of another digest (a record copied and re-pointed) is dropped when read. */
  manifest: string;
  /** Bytes of the manifest, its config and its layers as the manifest declares them (a layer named twice counts twice). */
  size: number;
  /** The config and layer digests, in the manifest's order. */
  blobs: string[];
  /** Their sizes as declared (what prune reports freeing without asking the store). */
  sizes: number[];
}

/** Where a record is: its upstream, repository and tag. */
export type TagPlace = Pick<TagRecord, "upstream" | "repository" | "tag">;

/** A hint for updateTag; it saves a read, never changes what is written. */
export interface TagUpdateOptions {
  /** The record was absent when the caller read it just now. */
  absent?: boolean;
}

/** What updateTag did. */
export interface TagUpdate {
  /** The record as stored now (null: none). */
  record: TagRecord | null;
  /** Whether this call wrote it. */
  written: boolean;
  /** Whether this call wrote a record where there was none (or a damaged one). */
  created: boolean;
}

export interface StoredBlob {
  size: number;
  /** The content: `.slice()` for ranges, `.stream()` to read; a Response can send it as it is. */
  file: Blob;
  /** When the back-end can hand clients a time-limited URL of its own (S3 with `redirect`). */
  redirect?: (expiresInSeconds: number) => string;
  /** The content must be sent as `file.stream()` (an S3 object), not as the Blob itself. */
  streamOnly?: boolean;
  /**
   * The whole content to send, when the back-end wants to see it go by (the S3 driver fills its
   * local copy from it); else `file` (or `file.stream()`). Ranges are always cut from `file`.
   */
  stream?: () => ReadableStream<Uint8Array>;
}

export type StoreFailure =
  /** Asked for something the store does not hold. */
  | "not-found"
  /** Bytes that do not match their digest or announced size; nothing was kept. */
  | "corrupt"
  /** Another writer changed the same record first (a conditional write lost). */
  | "conflict"
  /** The back-end cannot be reached or refused us (disk full, credentials, network). */
  | "unavailable"
  /** The store's bounds (maxSize, minFreeSpace) leave no room and nothing can be evicted; nothing was kept. */
  | "full"
  /** A name, tag or digest the store cannot place (it could leave the store): a caller's bug. */
  | "invalid";

export class StoreError extends Error {
  constructor(readonly failure: StoreFailure, message: string) {
    super(message);
    this.name = "StoreError";
  }
}

/** A blob being written: nothing is visible until commit() has verified it. */
export interface BlobWriter {
  /** Appends bytes. */
  write(chunk: Uint8Array): Promise<void>;
  /** Bytes written so far. */
  readonly written: number;
  /** Reads back bytes already written (readers joining a download); returns how many were read. */
  readAt(position: number, into: Uint8Array): Promise<number>;
  /**
   * Checks the size (when one was expected) and the digest of what was written; on a mismatch
   * throws StoreError("corrupt") and keeps nothing. Bytes that pass may be handed to clients.
   */
  verify(): Promise<void>;
  /**
   * Verifies (unless verify() already did), then makes the blob visible under its digest at once
   * (fsync and rename; completing an S3 upload). On a mismatch throws StoreError("corrupt").
   */
  commit(): Promise<void>;
  /** Drops what was written; nothing is left behind. Safe to call twice or after a failed commit. */
  abort(): Promise<void>;
  /** Frees what readAt needs, once the writer is committed or aborted and no reader needs it. */
  release(): Promise<void>;
}

/** A record file that cannot be read as a record: where it is (for messages) and how to drop it. */
export interface DamagedRecord {
  where: string;
  remove(): Promise<void>;
}

export interface Store {
  /** Where the store is, for messages. */
  readonly location: string;
  /**
   * Replicas on other hosts may change the store at any time (S3): this process's counts miss
   * their changes, and eviction coordinates through state files (cache/replicas.ts).
   */
  readonly shared: boolean;
  /** Prepares the store and removes leftovers of interrupted writes by processes that are gone; returns how many. */
  init(): Promise<number>;
  /** Throws unless the store can be read and written now (readiness). */
  probe(): Promise<void>;
  statBlob(digest: string): Promise<StoredBlob | null>;
  /** A writer for a blob; `size`, when known, is checked at commit. */
  createBlobWriter(digest: string, opts?: { size?: number }): Promise<BlobWriter>;
  readManifest(digest: string): Promise<Uint8Array | null>;
  /** Stores manifest bytes under their digest; StoreError("corrupt") if the bytes do not match it. */
  writeManifest(digest: string, bytes: Uint8Array): Promise<void>;
  /**
   * Optional, the same as writeManifest, and says whether this call created the manifest (true) or
   * found one there (false, rewritten with these bytes): one conditional create when it is new
   * (S3 `If-None-Match: *`), no look before it.
   */
  createManifest?(digest: string, bytes: Uint8Array): Promise<boolean>;
  readTag(upstream: string, repository: string, tag: string): Promise<TagRecord | null>;
  /** Writes a record as it is, replacing whatever is there (load --archive); see updateTag for replicas. */
  writeTag(record: TagRecord): Promise<void>;
  /**
   * Changes a record without losing another writer's change: reads it (null when absent or
   * damaged), asks `change` for the record to store (null: leave it as it is), and writes that only
   * if the record is still as read (S3 `If-Match`), asking again after another writer came first.
   * `change` may run several times, also on its own earlier output (a write S3 answered with a
   * 500 is taken as lost), so it must merge (later times, a pin) rather than count, and must not
   * have effects. StoreError("conflict") after UPDATE_TRIES lost races in a row.
   * `opts.absent`: the caller has just read the record and found none, so the first try creates
   * it (`change(null)`, written only if still absent) without reading it again.
   */
  updateTag(place: TagPlace, change: (current: TagRecord | null) => TagRecord | null, opts?: TagUpdateOptions): Promise<TagUpdate>;
  /** Tags cached for one repository, sorted (pins by digest excluded). */
  listTags(upstream: string, repository: string): Promise<string[]>;
  /** Where every tag record is (upstream, repository, tag), from one key listing: no record is read. */
  tagPlaces(): AsyncIterable<Pick<TagRecord, "upstream" | "repository" | "tag">>;
  /** Every valid tag record in the store; `onDamaged` hears of each record file that is not one. */
  allTags(onDamaged?: (where: string) => void): AsyncIterable<TagRecord>;
  /** Digests of every stored blob or manifest. */
  listContent(kind: ContentKind): AsyncIterable<string>;
  /** Size and last-modified time (ms) of a stored blob or manifest; null when absent. */
  contentInfo(kind: ContentKind, digest: string): Promise<{ size: number; modified: number } | null>;
  removeContent(kind: ContentKind, digest: string): Promise<void>;
  removeTag(upstream: string, repository: string, tag: string): Promise<void>;
  /**
   * Removes a record only if it is still exactly `expected` (as read earlier): false when it was
   * changed or removed meanwhile (another replica pulled or pinned it), and then nothing is removed.
   */
  removeTagIf(expected: TagRecord): Promise<boolean>;
  /** Record files that cannot be read as records. */
  damagedTags(): AsyncIterable<DamagedRecord>;
  /** What the store holds, counted without reading records or content (for metrics at start). */
  stats(): Promise<StoreStats>;
  /** Tag records in the store (pins included), counted by their keys: none is read. */
  countTags(): Promise<number>;
  /** Every stored blob or manifest with its size, from one listing (no read, no stat per item where the back-end lists sizes). */
  listContentSizes(kind: ContentKind): AsyncIterable<{ digest: string; size: number }>;
  /** A small file of the store's own bookkeeping (`state/<name>`); null when absent. */
  readState(name: string): Promise<Uint8Array | null>;
  writeState(name: string, bytes: Uint8Array): Promise<void>;
  /** Creates `state/<name>` only if it is absent, atomically against other processes and replicas: true when created, false when it existed. */
  createState(name: string, bytes: Uint8Array): Promise<boolean>;
  /** Removes `state/<name>`; removing what is absent is fine. */
  removeState(name: string): Promise<void>;
  /** Names of the files under `state/<dir>/` (no listing of anything else). */
  listState(dir: string): AsyncIterable<string>;
  /** The filesystem the store lives on: its size and the bytes free to us; null for object storage. */
  space(): Promise<{ total: number; free: number } | null>;
}

export interface StoreStats {
  blobs: number;
  manifests: number;
  /** Bytes of blobs and manifests. */
  bytes: number;
  /** Tag records (pins included). */
  tags: number;
}

export type ContentKind = "blobs" | "manifests";
