// What the store holds, image by image, as `list` prints it and the admin API returns it.
import pLimit from "p-limit";
import { parseDigest } from "../oci/digest.ts";
import { childrenOf } from "../oci/walk.ts";
import { matchesAny, type ImagePattern } from "../oci/pattern.ts";
import { recordName, summaryOf } from "../store/record.ts";
import type { Store, TagRecord } from "../store/types.ts";
import type { TagIndex } from "./tag-index.ts";

/** A row of `list`: the tag record (tag `<none>` for an image pinned by digest) plus its size. */
export type ListedImage = Pick<TagRecord, "tag" | "digest" | "mediaType" | "created" | "lastPulled"> & {
  /** `<upstream>/<repository>` */
  image: string;
  /**
   * Bytes of the manifests, configs and layers the image uses: for an image manifest as it
   * declares them (its record's summary), otherwise those stored.
   */
  size: number;
  /** Never evicted: pinned by its record or by a `pinned` pattern of the config. */
  pinned: boolean;
};

/** Size on disk of what an image uses; shared blobs count in every image that uses them. */
function storedSize(store: Store, digest: string, memo: Map<string, Promise<number>>): Promise<number> {
  let p = memo.get(digest);
  if (!p) {
    p = computeSize(store, digest, memo);
    memo.set(digest, p);
  }
  return p;
}

async function computeSize(store: Store, digest: string, memo: Map<string, Promise<number>>): Promise<number> {
  const bytes = await store.readManifest(digest);
  if (!bytes) return 0;
  let size = bytes.byteLength;
  const c = childrenOf(bytes);
  for (const child of c.manifests) size += await storedSize(store, child.digest, memo);
  for (const b of c.blobs) size += (await store.contentInfo("blobs", b.digest))?.size ?? 0;
  return size;
}

/**
 * The rows of `records`. A record's summary gives its image's size (no manifest is read); for the
 * others (an index, a record from before summaries) it is computed once per distinct image (many
 * tags share one), a few at a time.
 */
async function rowsOf(store: Store, records: TagRecord[], pins: readonly ImagePattern[]): Promise<ListedImage[]> {
  const memo = new Map<string, Promise<number>>();
  const limit = pLimit(32);
  const digests = [...new Set(records.filter((r) => !summaryOf(r)).map((r) => r.digest))];
  const sizes = new Map(await Promise.all(digests.map((d) => limit(async () => [d, await storedSize(store, d, memo)] as const))));
  return records.map((r): ListedImage => ({
    image: `${r.upstream}/${r.repository}`, tag: parseDigest(r.tag) ? "<none>" : r.tag, digest: r.digest, mediaType: r.mediaType,
    size: summaryOf(r)?.size ?? sizes.get(r.digest) ?? 0, created: r.created, lastPulled: r.lastPulled,
    pinned: r.pinned === true || matchesAny(pins, recordName(r)),
  }));
}

export async function listImages(store: Store, pattern?: RegExp, onDamaged?: (where: string) => void, pins: readonly ImagePattern[] = []): Promise<ListedImage[]> {
  const records: TagRecord[] = [];
  for await (const r of store.allTags(onDamaged)) if (!pattern || pattern.test(recordName(r))) records.push(r);
  const out = await rowsOf(store, records, pins);
  const order = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  return out.sort((a, b) => order(a.image, b.image) || order(a.tag, b.tag));
}

/** One page of the store's images in name order (`upstream/repository:tag`): only its records are read, only its sizes computed. */
export async function listImagesPage(store: Store, index: TagIndex, o: { limit: number; cursor?: string; q?: string }, pins: readonly ImagePattern[] = []) {
  const page = await index.page(o);
  const limit = pLimit(32);
  // A record removed since the index saw it is left out of the page.
  const records = (await Promise.all(page.places.map((p) => limit(() => store.readTag(p.upstream, p.repository, p.tag).catch(() => null)))))
    .filter((r): r is TagRecord => r !== null);
  return { images: await rowsOf(store, records, pins), next: page.next, total: page.total };
}
