// Manifests kept in memory, least recently used first out, within a byte budget: cached
// manifests are answered without touching the disk. Keyed by digest: only verified content.
import { BoundedMap } from "../lib/bounded-map.ts";

export interface MemoryManifest {
  bytes: Uint8Array;
  mediaType: string;
  digest: string;
}

export class ManifestMemory {
  private readonly entries: BoundedMap<string, MemoryManifest>;
  constructor(budget: number) {
    this.entries = new BoundedMap(Infinity, budget, (m) => m.bytes.byteLength);
  }

  get(digest: string): MemoryManifest | undefined {
    return this.entries.get(digest);
  }

  delete(digest: string) {
    this.entries.delete(digest);
  }

  set(m: MemoryManifest) {
    this.entries.set(m.digest, m);
  }
}
