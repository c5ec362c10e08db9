// Tag records: the one validator every reader of a record uses (the store, an archive being
// loaded) and the one spelling of a record's name.
import { BoundedMap } from "../lib/bounded-map.ts";
import { isDigest } from "../oci/digest.ts";
import { isHost, isRepositoryName, isTag } from "../oci/names.ts";
import { formatReference } from "../oci/reference.ts";
import type { ImageSummary, TagRecord } from "./types.ts";

/** `upstream/repository:tag`, or `upstream/repository@digest` for an image pinned by digest. */
export function recordName(r: Pick<TagRecord, "upstream" | "repository" | "tag">): string {
  return formatReference({ upstream: r.upstream, repository: r.repository, reference: r.tag });
}

/** A record's tag is a tag, or for an image pinned by digest the digest it points at. */
export function isRecordTag(tag: string): boolean {
  return isTag(tag) || isDigest(tag);
}

const isTime = (t: unknown) => typeof t === "string" && !Number.isNaN(Date.parse(t));

/** (upstream, repository) pairs already checked: a store has many records per repository. */
const checkedRepositories = new BoundedMap<string, boolean>(10_000);

function validRepository(upstream: string, repository: string): boolean {
  const key = `${upstream}/${repository}`;
  let ok = checkedRepositories.get(key);
  if (ok === undefined) checkedRepositories.set(key, (ok = isHost(upstream) && isRepositoryName(repository)));
  return ok;
}

/**
 * Whether a parsed value is a complete, well-formed tag record; with `at`, also that it is the
 * record of that upstream, repository and tag (the place it was found). A pinned record's name
 * is its digest, so it must point at that digest.
 */
export function isValidTagRecord(v: unknown, at?: Pick<TagRecord, "upstream" | "repository" | "tag">): v is TagRecord {
  const r = v as TagRecord | null;
  if (!r || typeof r !== "object") return false;
  if (typeof r.upstream !== "string" || typeof r.repository !== "string" || !validRepository(r.upstream, r.repository)) return false;
  if (typeof r.tag !== "string" || !isRecordTag(r.tag)) return false;
  if (typeof r.digest !== "string" || !isDigest(r.digest)) return false;
  if (isDigest(r.tag) && r.tag !== r.digest) return false;
  if (typeof r.mediaType !== "string" || typeof r.size !== "number" || !Number.isFinite(r.size)) return false;
  if (![r.created, r.lastPulled, r.checked].every(isTime)) return false;
  if (r.pinned !== undefined && typeof r.pinned !== "boolean") return false;
  return !at || (r.upstream === at.upstream && r.repository === at.repository && r.tag === at.tag);
}

/** A record's image summary when it is one of the record's own digest (what readers may trust). */
export function summaryOf(r: Pick<TagRecord, "digest" | "image">): ImageSummary | undefined {
  return r.image?.manifest === r.digest ? r.image : undefined;
}

/** Blobs one summary may name; a real image names tens (the pull refuses more than 20,000 in all). */
const MAX_SUMMARY_BLOBS = 20_000;

/** Whether a record's `image` field is a well-formed summary. */
export function isImageSummary(v: unknown): v is ImageSummary {
  const s = v as ImageSummary | null;
  const count = (n: unknown) => Number.isSafeInteger(n) && (n as number) >= 0;
  if (!s || typeof s !== "object" || typeof s.manifest !== "string" || !isDigest(s.manifest) || !count(s.size)) return false;
  if (!Array.isArray(s.blobs) || s.blobs.length > MAX_SUMMARY_BLOBS || !Array.isArray(s.sizes) || s.sizes.length !== s.blobs.length) return false;
  return s.blobs.every((b) => typeof b === "string" && isDigest(b)) && s.sizes.every(count);
}

/** One decoder for every record read (a listing reads 100,000s). */
const UTF8 = new TextDecoder();

/**
 * Parses a record file's bytes; null when they are not a valid record (of `at`, when given). A
 * summary that is not well formed (another version's, a damaged one) or not of the record's
 * digest is dropped, not the record: readers then read the manifest, and `verify --repair`
 * writes the summary again.
 */
export function parseTagRecord(bytes: Uint8Array, at?: Pick<TagRecord, "upstream" | "repository" | "tag">): TagRecord | null {
  try {
    const r: unknown = JSON.parse(UTF8.decode(bytes));
    if (!isValidTagRecord(r, at)) return null;
    if (r.image !== undefined && !(isImageSummary(r.image) && r.image.manifest === r.digest)) delete r.image;
    return r;
  } catch {
    return null;
  }
}

export function serializeTagRecord(r: TagRecord): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(r, null, 2) + "\n");
}
