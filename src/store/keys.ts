// The store's key scheme, spelled once for every driver and for archives (export, load --archive):
//   blobs/<algorithm>/<hex>                                  layer and config bytes
//   manifests/<algorithm>/<hex>                              manifest and index bytes, exactly as pulled
//   repositories/<upstream>/<repository>/_tags/<tag>.json   one TagRecord per cached tag
//   tmp/<owner>/                                             in-progress writes of one process
// Keys use "/" whatever the driver; each key names its place, so a key that could leave the store
// (a "..", an absolute path) is refused here before any driver sees it.
import { isDigest, parseDigest } from "../oci/digest.ts";
import { isRepositoryName } from "../oci/names.ts";
import { processOwner } from "./owner.ts";
import { isRecordTag } from "./record.ts";
import { StoreError, type ContentKind, type TagRecord } from "./types.ts";

type RecordPlace = Pick<TagRecord, "upstream" | "repository" | "tag">;

export const CONTENT_KINDS: readonly ContentKind[] = ["blobs", "manifests"];
/** Digest algorithms the store keeps content under. */
export const ALGORITHMS = ["sha256", "sha512"] as const;
/** Where tag records live: every record key starts with this. */
export const RECORDS_PREFIX = "repositories/";
/** `_tags` cannot be a repository path component (components start with [a-z0-9]). */
const TAGS_DIR = "_tags";
export const TEMP_PREFIX = "tmp/";
/** The store's own bookkeeping (the size snapshot); never content, never a record. */
export const STATE_PREFIX = "state/";
/** The directories a directory-like back-end creates at init, so that an empty store is a valid image path. */
export const LAYOUT_DIRS = ["blobs/sha256", "manifests/sha256", "repositories", "tmp"] as const;

/** `<kind>/<algorithm>/<hex>`; StoreError("invalid") unless `digest` is a digest. */
export function contentKey(kind: ContentKind, digest: string): string {
  const d = parseDigest(digest);
  if (!d) throw new StoreError("invalid", `not a digest: ${JSON.stringify(digest)}`);
  return `${kind}/${d.algorithm}/${d.hex}`;
}

/** The prefix under which every `<kind>` object of one algorithm lives. */
export const contentPrefix = (kind: ContentKind, algorithm: string) => `${kind}/${algorithm}/`;

/** The kind and digest a content key names; null when it names none (an archive's stray entry). */
export function parseContentKey(key: string): { kind: ContentKind; digest: string } | null {
  const parts = key.split("/");
  if (parts.length !== 3) return null;
  const [kind, algorithm, hex] = parts as [string, string, string];
  const digest = `${algorithm}:${hex}`;
  return (kind === "blobs" || kind === "manifests") && isDigest(digest) ? { kind, digest } : null;
}

/** The directory of one repository's records; StoreError("invalid") for a name that could leave the store. */
export function recordDir(upstream: string, repository: string): string {
  // Callers validate names; this guards the store against anything that slipped through.
  if (!isRepositoryName(repository) || upstream.includes("/") || upstream.startsWith(".") || !upstream) {
    throw new StoreError("invalid", `unsafe repository path: ${upstream}/${repository}`);
  }
  return `${RECORDS_PREFIX}${upstream}/${repository}/${TAGS_DIR}/`;
}

/** A record's key: `<tag>.json`, or `<algorithm>:<hex>.json` for an image pinned by digest. */
export function recordKey(r: RecordPlace): string {
  if (!isRecordTag(r.tag)) throw new StoreError("invalid", `unsafe tag: ${JSON.stringify(r.tag)}`);
  return `${recordDir(r.upstream, r.repository)}${r.tag}.json`;
}

/**
 * The upstream, repository and tag a record key names, read from its shape only (null when it is
 * not shaped like a record key); whether those are valid names is for the record's validator.
 */
export function parseRecordKey(key: string): RecordPlace | null {
  if (!key.startsWith(RECORDS_PREFIX) || !key.endsWith(".json")) return null;
  const parts = key.slice(RECORDS_PREFIX.length).split("/");
  if (parts.length < 3 || parts.at(-2) !== TAGS_DIR) return null;
  return { upstream: parts[0]!, repository: parts.slice(1, -2).join("/"), tag: parts.at(-1)!.slice(0, -".json".length) };
}

/** The tag a key under recordDir() names, or null for a pin by digest (a ':' no tag can hold) or a stray object. */
export function tagOfRecordName(name: string): string | null {
  return name.endsWith(".json") && !name.includes("/") && !name.includes(":") ? name.slice(0, -".json".length) : null;
}

/**
 * `state/<name>` or `state/<dir>/<name>` (one level: the replicas' files); StoreError("invalid")
 * for anything else. Every part starts with [a-z0-9], so none can be "." or "..".
 */
export function stateKey(name: string): string {
  if (!/^(?:[a-z0-9][a-z0-9_-]{0,40}\/)?[a-z0-9][a-z0-9._-]{0,100}$/.test(name)) throw new StoreError("invalid", `not a state name: ${JSON.stringify(name)}`);
  return `${STATE_PREFIX}${name}`;
}

/** This process's temp directory: its in-progress writes, removed by a later init once it is gone. */
export const ownTempPrefix = () => `${TEMP_PREFIX}${processOwner()}/`;
