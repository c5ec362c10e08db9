// `ociregistry list`: what the store holds, like `crictl images`.
import { defineCommand } from "citty";
import pLimit from "p-limit";
import { loadConfig } from "../../config/load.ts";
import { ConfigError } from "../../config/error.ts";
import { childrenOf } from "../../oci/walk.ts";
import { parseDigest } from "../../oci/digest.ts";
import { recordName } from "../../store/record.ts";
import { createFsStore } from "../../store/fs.ts";
import type { Store, TagRecord } from "../../store/types.ts";
import { exitWithError } from "../fail.ts";
import { globalArgs, globalFlags } from "../globals.ts";
import { formatBytes } from "../progress.ts";

/** A row of `list`: the tag record (tag `<none>` for an image pinned by digest) plus its size. */
export type ListedImage = Pick<TagRecord, "tag" | "digest" | "mediaType" | "created" | "lastPulled"> & {
  /** `<upstream>/<repository>` */
  image: string;
  /** Bytes of the stored manifests, configs and layers the image uses. */
  size: number;
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

export async function listImages(store: Store, pattern?: RegExp, onDamaged?: (where: string) => void): Promise<ListedImage[]> {
  const memo = new Map<string, Promise<number>>();
  const records: TagRecord[] = [];
  for await (const r of store.allTags(onDamaged)) if (!pattern || pattern.test(recordName(r))) records.push(r);
  const limit = pLimit(32);
  const out = await Promise.all(records.map((r) => limit(async (): Promise<ListedImage> => {
    const pinned = !!parseDigest(r.tag);
    return {
      image: `${r.upstream}/${r.repository}`, tag: pinned ? "<none>" : r.tag, digest: r.digest, mediaType: r.mediaType,
      size: await storedSize(store, r.digest, memo), created: r.created, lastPulled: r.lastPulled,
    };
  })));
  return out.sort((a, b) => (a.image === b.image ? a.tag.localeCompare(b.tag) : a.image < b.image ? -1 : 1));
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("   ")).join("\n");
}

export function compilePattern(p: string | undefined, flag = "--pattern"): RegExp | undefined {
  if (p === undefined) return undefined;
  try {
    return new RegExp(p);
  } catch (err) {
    throw new ConfigError(flag, `not a regular expression: ${(err as Error).message}`);
  }
}

export default defineCommand({
  meta: { name: "list", description: "List the images in the store" },
  args: {
    ...globalArgs,
    pattern: { type: "string", description: "Only images whose upstream/repository:tag matches this regular expression", valueHint: "REGEX" },
    long: { type: "boolean", description: "Show full digests (default: 12 characters)" },
    json: { type: "boolean", description: "Print JSON for scripts" },
  },
  async run({ args }) {
    let imagePath: string;
    let pattern: RegExp | undefined;
    try {
      imagePath = loadConfig(globalFlags(args)).imagePath;
      pattern = compilePattern(args.pattern);
    } catch (err) {
      return exitWithError(err);
    }
    const images = await listImages(createFsStore(imagePath), pattern, (where) => process.stderr.write(`skipped unreadable tag record ${where} (ociregistry verify reports it)\n`));
    if (args.json) {
      console.log(JSON.stringify(images, null, 2));
      return;
    }
    const rows = [["IMAGE", "TAG", "DIGEST", "SIZE", "LAST PULLED"]];
    for (const i of images) {
      const digest = args.long ? i.digest : parseDigest(i.digest)!.hex.slice(0, 12);
      rows.push([i.image, i.tag, digest, formatBytes(i.size), i.lastPulled.replace(/\.\d+Z$/, "Z")]);
    }
    console.log(table(rows));
  },
});
