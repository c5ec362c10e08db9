// The store interface: what the cache needs from a place that keeps blobs, manifests and tag
// records. The directory store implements it; an S3 store can implement the same contract.

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
}

export interface StoredBlob {
  size: number;
  /** The content, sliceable for ranges; for the directory store a Bun.file the kernel sends. */
  file: Blob;
}

/** A file being written into the store: bytes go to `path`, then `commit` makes them visible. */
export interface Spool {
  path: string;
  /** Moves the finished file into place under `digest`. The caller has verified the digest. */
  commitBlob(digest: string): Promise<void>;
  discard(): Promise<void>;
}

export interface Store {
  /** Root of the store, for messages. */
  readonly location: string;
  /** Removes leftovers of interrupted writes by processes that are gone; returns how many were removed. */
  init(): Promise<number>;
  statBlob(digest: string): Promise<StoredBlob | null>;
  /** Throws unless the store can be read and written now (readiness). */
  probe(): Promise<void>;
  /** A fresh temp file inside the store, on the same filesystem as the blobs. */
  spool(): Promise<Spool>;
  readManifest(digest: string): Promise<Uint8Array | null>;
  /** Stores manifest bytes under their digest; throws if the bytes do not match it. */
  writeManifest(digest: string, bytes: Uint8Array): Promise<void>;
  readTag(upstream: string, repository: string, tag: string): Promise<TagRecord | null>;
  writeTag(record: TagRecord): Promise<void>;
  /** Tags cached for one repository, sorted. */
  listTags(upstream: string, repository: string): Promise<string[]>;
  /** Every valid tag record in the store; `onDamaged` hears of each record file that is not one. */
  allTags(onDamaged?: (where: string) => void): AsyncIterable<TagRecord>;
  /** Digests of every stored blob or manifest. */
  listContent(kind: ContentKind): AsyncIterable<string>;
  /** Size and last-modified time (ms) of a stored blob or manifest; null when absent. */
  contentInfo(kind: ContentKind, digest: string): Promise<{ size: number; modified: number } | null>;
  /** The stored bytes of a blob or manifest, for re-hashing; null when absent. */
  openContent(kind: ContentKind, digest: string): Promise<Blob | null>;
  removeContent(kind: ContentKind, digest: string): Promise<void>;
  removeTag(upstream: string, repository: string, tag: string): Promise<void>;
  /** Tag record files that cannot be read as records (path relative to the store). */
  damagedTags(): AsyncIterable<string>;
  removeDamagedTag(relativePath: string): Promise<void>;
}

export type ContentKind = "blobs" | "manifests";
