// Puts an archive source in front of the cache's manifests and blobs: what the archives hold is
// served from them (and never stored or recorded); the rest goes the usual way, to the store and
// the upstreams. Pulls into the store (load, preload) keep using the store path alone.
import type { BlobSource, Blobs } from "./blobs.ts";
import type { ArchiveSource, CacheObserver } from "./context.ts";
import type { ManifestResult, Manifests } from "./manifests.ts";

/**
 * Every method is listed (no spread of the store path): a method added to Manifests or Blobs is
 * a type error here until someone decides whether the archives answer it first.
 */
export function archivesFirst(archives: ArchiveSource, manifests: Manifests, blobs: Blobs, observe: CacheObserver): { manifests: Manifests; blobs: Blobs } {
  return {
    manifests: {
      async get(target, reference, clientAccept, served): Promise<ManifestResult> {
        const m = await archives.manifest(target, reference);
        if (!m) return manifests.get(target, reference, clientAccept, served);
        observe.hit?.("manifest");
        if (served) served.cache = "archive";
        return m;
      },
      // Bookkeeping of the store path: nothing is served.
      adopt: (target, bytes) => manifests.adopt(target, bytes),
      uncover: (target, digest, children) => manifests.uncover(target, digest, children),
    },
    blobs: {
      async get(target, digest, opts): Promise<BlobSource> {
        const b = await archives.blob(target, digest);
        if (!b) return blobs.get(target, digest, opts);
        observe.hit?.("blob");
        if (opts?.served) opts.served.cache = "archive";
        return { kind: "stored", size: b.size, file: b.file };
      },
      // Both are about the store: a blob made sure of there, downloads running into it.
      ensure: (target, digest) => blobs.ensure(target, digest),
      downloading: () => blobs.downloading(),
      active: () => blobs.active(),
      local: (upstream, digest) => blobs.local(upstream, digest),
    },
  };
}
