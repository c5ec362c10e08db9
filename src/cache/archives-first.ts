// Puts an archive source in front of the cache's manifests and blobs: what the archives hold is
// served from them (and never stored or recorded); the rest goes the usual way, to the store and
// the upstreams. Pulls into the store (load, preload) keep using the store path alone.
import type { BlobSource, createBlobs } from "./blobs.ts";
import type { ArchiveSource, CacheObserver } from "./context.ts";
import type { createManifests, ManifestResult } from "./manifests.ts";

type Manifests = ReturnType<typeof createManifests>;
type Blobs = ReturnType<typeof createBlobs>;

export function archivesFirst(archives: ArchiveSource, manifests: Manifests, blobs: Blobs, observe: CacheObserver): { manifests: Manifests; blobs: Blobs } {
  return {
    manifests: {
      ...manifests,
      async get(target, reference, clientAccept): Promise<ManifestResult> {
        const m = await archives.manifest(target, reference);
        if (!m) return manifests.get(target, reference, clientAccept);
        observe.hit?.("manifest");
        return m;
      },
    },
    blobs: {
      ...blobs,
      async get(target, digest, opts): Promise<BlobSource> {
        const b = await archives.blob(target, digest);
        if (!b) return blobs.get(target, digest, opts);
        observe.hit?.("blob");
        return { kind: "stored", size: b.size, file: b.file };
      },
    },
  };
}
