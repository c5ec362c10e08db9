// Pulling a whole image into the store (what `load` and `serve --preload-images` do): the
// manifest or index as the upstream serves it, the platform manifests asked for, and their
// config and layer blobs. It goes through the same cache functions as a client's pull.
import pLimit from "p-limit";
import { isDigest } from "../oci/digest.ts";
import { INDEX_TYPES, type Platform } from "../oci/mediatypes.ts";
import type { Target } from "../oci/reference.ts";
import { childrenOf } from "../oci/walk.ts";
import type { createBlobs } from "./blobs.ts";
import type { createManifests } from "./manifests.ts";
import type { TagBook } from "./records.ts";

export type PlatformChoice = Platform[] | "all";

export interface PullResult {
  digest: string;
  /** Platform manifests pulled (1 for a single-platform image). */
  images: number;
  blobs: number;
  /** Bytes this pull downloaded (0 when everything was already stored). */
  downloaded: number;
}

/** The platform this process runs on, as image indexes name it. */
export function hostPlatform(): Platform {
  const arch: Record<string, string> = { x64: "amd64", arm64: "arm64", arm: "arm", ia32: "386", ppc64: "ppc64le", s390x: "s390x" };
  return { os: "linux", architecture: arch[process.arch] ?? process.arch, ...(process.arch === "arm" ? { variant: "v7" } : {}) };
}

/** Parses `os/arch[/variant]`; null when malformed. */
export function parsePlatform(text: string): Platform | null {
  const [os, architecture, variant, extra] = text.split("/");
  if (!os || !architecture || extra !== undefined || variant === "") return null;
  return { os, architecture, ...(variant ? { variant } : {}) };
}

function matches(p: Platform | undefined, wanted: Platform): boolean {
  return !!p && p.os === wanted.os && p.architecture === wanted.architecture && (!wanted.variant || p.variant === wanted.variant);
}

export function createPuller(manifests: ReturnType<typeof createManifests>, blobs: ReturnType<typeof createBlobs>, records: TagBook, blobConcurrency = 4) {
  const limit = pLimit(blobConcurrency);

  return async function pullImage(target: Target, reference: string, platforms: PlatformChoice, onBytes?: (n: number) => void): Promise<PullResult> {
    const top = await manifests.get(target, reference, null);
    if (isDigest(reference)) await records.pin(target, top);
    const result: PullResult = { digest: top.digest, images: 0, blobs: 0, downloaded: 0 };
    let images = [top];
    if (INDEX_TYPES.has(top.mediaType)) {
      const children = childrenOf(top.bytes).manifests.filter((m) =>
        platforms === "all" || platforms.some((p) => matches(m.platform, p)));
      if (children.length === 0) {
        const wanted = platforms === "all" ? "any" : platforms.map((p) => [p.os, p.architecture, p.variant].filter(Boolean).join("/")).join(", ");
        throw new Error(`no manifest for platform ${wanted} in the index`);
      }
      images = await Promise.all(children.map((c) => manifests.get(target, c.digest, null)));
    }
    const digests = new Set<string>();
    for (const img of images) for (const b of childrenOf(img.bytes).blobs) digests.add(b.digest);
    result.images = images.length;
    result.blobs = digests.size;
    await Promise.all([...digests].map((d) => limit(async () => {
      const n = await blobs.ensure(target, d);
      result.downloaded += n;
      if (n) onBytes?.(n);
    })));
    return result;
  };
}
